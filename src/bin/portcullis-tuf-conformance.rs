//! `portcullis-tuf-conformance`: the client-under-test CLI of the TUF project's conformance
//! suite (tuf-conformance, CLIENT-CLI.md) over Portcullis's own TUF client, `trust::tuf`: the
//! same HTTP transport and metadata store as the proxy. Run by `scripts/tuf-conformance.sh`.
//!
//! ```text
//! portcullis-tuf-conformance --metadata-dir DIR init ROOT
//! portcullis-tuf-conformance --metadata-dir DIR --metadata-url URL refresh
//! portcullis-tuf-conformance --metadata-dir DIR --metadata-url URL --target-name P... \
//!     --target-base-url URL --target-dir DIR download
//! ```
//!
//! Exit code 0 on success, 1 on any failure (argument errors included).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "portcullis-tuf-conformance",
    version,
    about = "tuf-conformance client-under-test over Portcullis's TUF client"
)]
struct Cli {
    /// Where the client keeps the metadata it trusts (non-versioned names only).
    #[arg(long)]
    metadata_dir: PathBuf,
    /// The repository's metadata URL.
    #[arg(long)]
    metadata_url: Option<String>,
    /// A target path to download (repeatable: processed in order, the first failure stops).
    #[arg(long = "target-name")]
    target_names: Vec<String>,
    /// The repository's targets URL.
    #[arg(long)]
    target_base_url: Option<String>,
    /// Where downloaded targets go.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// Accepted for the suite's sake; logging is set with RUST_LOG.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trust ROOT (a root.json): copy it into the metadata directory. No request is made.
    Init { trusted_root: PathBuf },
    /// Update the top-level metadata from --metadata-url (TUF 5.3 - 5.6).
    Refresh,
    /// Refresh, then resolve each --target-name and download it into --target-dir.
    Download,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::FAILURE;
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis-tuf-conformance: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { trusted_root } => {
            std::fs::copy(&trusted_root, cli.metadata_dir.join("root.json"))?;
            Ok(())
        }
        Command::Refresh | Command::Download => anyhow::bail!("not yet"),
    }
}
