//! Appending a download to its temp file with direct I/O (`O_DIRECT`), past the page cache.
//!
//! Why: a buffered write copies every byte into the page cache, and on a cold fill that copy
//! plus the page cache's allocation was most of what caching added to the hop's CPU over an
//! uncached stream (measured with `dd` on this machine's ext4: 0.35-0.7 s of system time per
//! GB buffered, 0.12 with 512 KiB direct writes). Here chunks are gathered into one aligned
//! block of [`BLOCK`] bytes (a copy in user space, cheaper than the kernel's) and each full
//! block is written directly to the device. Only the last, partial block is written through
//! the page cache (direct I/O wants whole, aligned blocks), after direct I/O was turned off.
//! The price: the entry is not in the page cache when the first hit reads it; that read comes
//! from the disk (through the kernel's read-ahead: measured 0.7-1.5 s/GB here against 0.4 from
//! memory), later ones from the page cache. `cache.direct_io = false` keeps the old way.
//!
//! Direct I/O is a best effort: a file system that refuses it (tmpfs before Linux 6.6,
//! some overlay set-ups) or a write it refuses (EINVAL) turns it off for this file, and the
//! rest is written as before. Readers of the file (followers of the download) are not
//! affected: the kernel keeps the page cache coherent with direct writes.

use std::fs::File;
use std::io;
#[cfg(test)]
use std::io::Write;
use std::os::unix::fs::FileExt;

use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
use rustix::io::Errno;

/// Bytes per direct write: large enough that the device's per-request cost is small (256 KiB
/// blocks cost about twice the system time of 512 KiB here), small enough to hold one per
/// writer (`MAX_WRITERS` of them at most).
pub(super) const BLOCK: usize = 512 * 1024;

/// Alignment of the block's memory, file offsets and lengths: the page size, which covers
/// every device's logical block size.
const ALIGN: usize = 4096;

/// Where a download's bytes go: each call says how many bytes are now in the file (and
/// readable by followers).
pub(super) trait Append {
    /// Takes `b`; returns the bytes that reached the file with this call (buffered bytes
    /// reach it later).
    fn append(&mut self, b: &[u8]) -> io::Result<u64>;
    /// Writes whatever is still buffered; returns how many bytes that was.
    fn finish(&mut self) -> io::Result<u64>;
}

/// Any writer, unbuffered: every byte is in the file when `append` returns (the tests' disks).
#[cfg(test)]
pub(super) struct Plain<W>(pub(super) W);

#[cfg(test)]
impl<W: Write> Append for Plain<W> {
    fn append(&mut self, b: &[u8]) -> io::Result<u64> {
        self.0.write_all(b)?;
        Ok(b.len() as u64)
    }
    fn finish(&mut self) -> io::Result<u64> {
        Ok(0)
    }
}

/// A file written in aligned blocks with `O_DIRECT` while that works, plainly after.
pub(super) struct Direct<'f> {
    file: &'f File,
    /// The block's memory, with `ALIGN` bytes of slack to start it on an aligned address.
    raw: Vec<u8>,
    /// Where the aligned block starts in `raw`.
    start: usize,
    /// Bytes waiting in the block.
    fill: usize,
    /// Whether the file is open for direct I/O now.
    direct: bool,
    /// Where the next write goes (the bytes in the file so far).
    offset: u64,
}

impl<'f> Direct<'f> {
    /// Turns direct I/O on for `file` (which must be empty) when `wanted`; when the file system
    /// refuses, the writer writes plainly and holds no block.
    pub(super) fn new(file: &'f File, wanted: bool) -> Direct<'f> {
        let direct = wanted
            && fcntl_getfl(file)
                .and_then(|f| fcntl_setfl(file, f | OFlags::DIRECT))
                .is_ok();
        if wanted && !direct {
            tracing::debug!(
                "blob cache: no direct I/O on this file system; writing through the page cache"
            );
        }
        // A plain writer holds no block.
        let raw = if direct {
            vec![0u8; BLOCK + ALIGN]
        } else {
            Vec::new()
        };
        // An address is a number; no pointer is dereferenced here.
        let start = (ALIGN - raw.as_ptr() as usize % ALIGN) % ALIGN;
        Direct {
            file,
            raw,
            start,
            fill: 0,
            direct,
            offset: 0,
        }
    }

    /// Whether blocks are still written directly (for tests).
    #[cfg(test)]
    pub(super) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Stops direct I/O for this file: the rest is written through the page cache.
    fn plain(&mut self) -> io::Result<()> {
        if self.direct {
            let flags = fcntl_getfl(self.file)?;
            fcntl_setfl(self.file, flags - OFlags::DIRECT)?;
            self.direct = false;
        }
        Ok(())
    }

    /// Writes the waiting bytes (a whole block, or the tail after `plain`) at the offset.
    fn flush_block(&mut self) -> io::Result<u64> {
        let n = self.fill;
        let mut done = 0;
        while done < n {
            let part = &self.raw[self.start + done..self.start + n];
            match self.file.write_at(part, self.offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => {
                    done += k;
                    self.offset += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Refused as direct I/O (the device wants another alignment, or a short
                // write left the offset unaligned): the rest goes through the page cache.
                Err(e) if self.direct && e.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => {
                    tracing::debug!(error = %e, "blob cache: direct write refused; writing through the page cache");
                    self.plain()?;
                }
                Err(e) => return Err(e),
            }
        }
        self.fill = 0;
        Ok(n as u64)
    }
}

impl Append for Direct<'_> {
    fn append(&mut self, mut b: &[u8]) -> io::Result<u64> {
        if !self.direct && self.fill == 0 {
            self.file.write_all_at(b, self.offset)?;
            self.offset += b.len() as u64;
            return Ok(b.len() as u64);
        }
        let mut wrote = 0;
        while !b.is_empty() {
            let take = b.len().min(BLOCK - self.fill);
            let at = self.start + self.fill;
            self.raw[at..at + take].copy_from_slice(&b[..take]);
            self.fill += take;
            b = &b[take..];
            if self.fill == BLOCK {
                wrote += self.flush_block()?;
            }
        }
        Ok(wrote)
    }

    fn finish(&mut self) -> io::Result<u64> {
        if self.fill == 0 {
            return Ok(0);
        }
        // The tail is shorter than a block: direct I/O would refuse it.
        self.plain()?;
        self.flush_block()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A file in a directory on the disk (not tmpfs): `TMPDIR`, as the tests run it.
    fn file() -> (tempfile::NamedTempFile, File) {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let reader = tmp.reopen().unwrap();
        (tmp, reader)
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Appends `d` in chunks of `chunk`; the bytes announced after each call.
    fn append_all(w: &mut impl Append, d: &[u8], chunk: usize) -> Vec<u64> {
        d.chunks(chunk).map(|c| w.append(c).unwrap()).collect()
    }

    #[test]
    fn whole_blocks_go_direct_and_only_written_bytes_are_announced() {
        let (tmp, mut reader) = file();
        let d = data(2 * BLOCK + 12_345);
        let mut w = Direct::new(tmp.as_file(), true);
        assert!(
            w.is_direct(),
            "the test's temp dir ({}) must allow O_DIRECT (a disk file system, not tmpfs)",
            std::env::temp_dir().display()
        );
        let announced = append_all(&mut w, &d, 65_536);
        assert_eq!(announced.iter().sum::<u64>(), 2 * BLOCK as u64);
        assert!(announced.iter().all(|&n| n == 0 || n == BLOCK as u64));
        // What was announced is readable through another descriptor, before the end.
        let mut got = vec![0; 2 * BLOCK];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(got, d[..2 * BLOCK]);
        assert_eq!(w.finish().unwrap(), 12_345);
        let mut all = Vec::new();
        File::open(tmp.path())
            .unwrap()
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, d);
        assert!(!w.is_direct(), "the tail was written plainly");
    }

    #[test]
    fn a_refused_direct_write_goes_on_through_the_page_cache() {
        let (tmp, _) = file();
        let d = data(3 * BLOCK + 1);
        let mut w = Direct::new(tmp.as_file(), true);
        assert!(w.is_direct(), "the test's temp dir must allow O_DIRECT");
        // A block that does not start on an aligned address: the kernel refuses it (EINVAL).
        w.start += 1;
        let announced = append_all(&mut w, &d, 100_000);
        assert!(!w.is_direct(), "refused, then plain");
        let total = announced.iter().sum::<u64>() + w.finish().unwrap();
        assert_eq!(total, d.len() as u64);
        assert_eq!(std::fs::read(tmp.path()).unwrap(), d);
    }

    #[test]
    fn short_downloads_and_empty_ones() {
        for n in [0, 1, ALIGN, BLOCK - 1, BLOCK] {
            let (tmp, _) = file();
            let d = data(n);
            let mut w = Direct::new(tmp.as_file(), true);
            let total = append_all(&mut w, &d, 4000).iter().sum::<u64>() + w.finish().unwrap();
            assert_eq!(total, n as u64, "{n} bytes");
            assert_eq!(std::fs::read(tmp.path()).unwrap(), d, "{n} bytes");
        }
    }

    #[test]
    fn direct_io_off_writes_through_the_page_cache() {
        let (tmp, _) = file();
        let d = data(BLOCK + 7);
        let mut w = Direct::new(tmp.as_file(), false);
        assert!(!w.is_direct());
        let announced = append_all(&mut w, &d, 65_536);
        assert!(
            announced.iter().all(|&n| n > 0),
            "every byte is in the file at once"
        );
        assert_eq!(w.finish().unwrap(), 0);
        assert_eq!(std::fs::read(tmp.path()).unwrap(), d);
    }

    #[test]
    fn a_full_disk_is_an_error_not_a_short_file() {
        // /dev/full: every write fails with ENOSPC (and it takes no O_DIRECT: plain writes).
        let full = File::options().write(true).open("/dev/full").unwrap();
        let mut w = Direct::new(&full, true);
        let err = w
            .append(&data(BLOCK + 1))
            .map(|_| ())
            .and_then(|_| w.finish().map(|_| ()));
        assert_eq!(err.unwrap_err().raw_os_error(), Some(28));
    }
}
