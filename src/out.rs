//! A command's report on standard output. `println!` panics when the reader has gone
//! (`portcullis check IMAGE | head -1`). A report's exit code carries its verdict (`check`: 0
//! trusted, 1 refused), so the command finishes and exits with it whether or not anybody reads
//! the rest: a closed pipe is not an error, any other write failure is said once on stderr.

use std::fmt::Arguments;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static SAID: AtomicBool = AtomicBool::new(false);

/// Writes `args` to standard output (the macros `outln!` and `out!` call this).
pub fn write(args: Arguments<'_>) {
    let mut stdout = io::stdout().lock();
    let result = stdout.write_fmt(args).and_then(|()| stdout.flush());
    if let Err(e) = result
        && e.kind() != io::ErrorKind::BrokenPipe
        && !SAID.swap(true, Ordering::Relaxed)
    {
        eprintln!("portcullis: cannot write the report to standard output: {e}");
    }
}

/// `println!` for reports: see the module.
#[macro_export]
macro_rules! outln {
    () => { $crate::out::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::write(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` for reports: see the module.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::write(format_args!($($arg)*)) };
}
