//! Appending a download to its temp file with direct I/O (`O_DIRECT`), past the page cache.
//!
//! Why: a buffered write copies every byte into the page cache, and on a cold fill that copy
//! plus the page cache's allocation was most of what caching added to the hop's CPU over an
//! uncached stream (measured with `dd` on this machine's ext4: 0.35-0.7 s of system time per
//! GB buffered, 0.12 with 512 KiB direct writes). The download's bytes are gathered into
//! aligned [`Block`]s of [`BLOCK`] bytes (by the hashing thread, right after it hashed them:
//! see `write`), and each whole block is written directly to the device. Only the last,
//! partial block is written through the page cache (direct I/O wants whole, aligned blocks),
//! after direct I/O was turned off. The price: the entry is not in the page cache when the
//! first hit reads it; that read comes from the disk (through the kernel's read-ahead:
//! measured 0.7-1.5 s/GB here against 0.4 from memory), later ones from the page cache.
//! `cache.direct_io = false` writes every block through the page cache.
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
/// blocks cost about twice the system time of 512 KiB here), small enough to hold a few per
/// writer (`MAX_WRITERS` writers at most).
pub(super) const BLOCK: usize = 512 * 1024;

/// Alignment of the block's memory (a mapping: page-aligned), file offsets and lengths: the
/// page size, which covers every device's logical block size.
#[cfg(test)]
const ALIGN: usize = 4096;

/// [`BLOCK`] bytes of memory starting on an aligned address, and how many of them are filled.
///
/// The memory is an anonymous mapping of its own, not the allocator's: it is page-aligned as
/// direct I/O wants, and it goes back to the kernel when the download ends. From the heap,
/// the allocator kept the pages of the last download's blocks until it next ran its delayed
/// purge, which an idle process does not (measured: 3-4 MiB of the RSS left after a pull).
pub(super) struct Block {
    map: memmap2::MmapMut,
    fill: usize,
}

impl Block {
    /// A new block; `None` if the kernel has no memory for it (the caller stops caching).
    pub(super) fn new() -> Option<Block> {
        match memmap2::MmapMut::map_anon(BLOCK) {
            Ok(map) => Some(Block { map, fill: 0 }),
            Err(e) => {
                tracing::warn!(error = %e, "blob cache: no memory for a write block");
                None
            }
        }
    }

    /// Copies as much of `b` as fits; returns how many bytes that was.
    pub(super) fn push(&mut self, b: &[u8]) -> usize {
        let take = b.len().min(BLOCK - self.fill);
        self.map[self.fill..self.fill + take].copy_from_slice(&b[..take]);
        self.fill += take;
        take
    }

    pub(super) fn is_full(&self) -> bool {
        self.fill == BLOCK
    }

    pub(super) fn is_empty(&self) -> bool {
        self.fill == 0
    }

    /// Empties the block for reuse.
    pub(super) fn clear(&mut self) {
        self.fill = 0;
    }

    fn filled(&self) -> &[u8] {
        &self.map[..self.fill]
    }
}

/// Where a download's blocks go, in order: each call says how many bytes are now in the file
/// (and readable by followers).
pub(super) trait Append {
    fn append(&mut self, block: &Block) -> io::Result<u64>;
}

/// Any writer (the tests' disks).
#[cfg(test)]
pub(super) struct Plain<W>(pub(super) W);

#[cfg(test)]
impl<W: Write> Append for Plain<W> {
    fn append(&mut self, block: &Block) -> io::Result<u64> {
        self.0.write_all(block.filled())?;
        Ok(block.fill as u64)
    }
}

/// A file written with `O_DIRECT` while that works, plainly after.
pub(super) struct Direct<'f> {
    file: &'f File,
    /// Whether the file is open for direct I/O now.
    direct: bool,
    /// Where the next write goes (the bytes in the file so far).
    offset: u64,
}

impl<'f> Direct<'f> {
    /// Turns direct I/O on for `file` (which must be empty) when `wanted`; when the file system
    /// refuses, the writer writes plainly.
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
        Direct {
            file,
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
}

impl Append for Direct<'_> {
    fn append(&mut self, block: &Block) -> io::Result<u64> {
        if !block.is_full() {
            // The tail is shorter than a block: direct I/O would refuse it.
            self.plain()?;
        }
        self.write_all(block.filled())
    }
}

impl Direct<'_> {
    /// Writes `bytes` at the offset: directly while the kernel takes it, plainly after.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<u64> {
        let mut done = 0;
        while done < bytes.len() {
            match self.file.write_at(&bytes[done..], self.offset) {
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
        Ok(bytes.len() as u64)
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

    /// `d` in blocks, as the hashing thread fills them (from chunks of 65 536 bytes).
    fn blocks(d: &[u8]) -> Vec<Block> {
        let mut out = vec![Block::new().unwrap()];
        for mut c in d.chunks(65_536) {
            while !c.is_empty() {
                let last = out.len() - 1;
                if out[last].is_full() {
                    out.push(Block::new().unwrap());
                    continue;
                }
                let n = out[last].push(c);
                c = &c[n..];
            }
        }
        out.retain(|b| !b.is_empty());
        out
    }

    #[test]
    fn whole_blocks_go_direct_and_each_is_readable_once_announced() {
        let (tmp, mut reader) = file();
        let d = data(2 * BLOCK + 12_345);
        let mut w = Direct::new(tmp.as_file(), true);
        assert!(
            w.is_direct(),
            "the test's temp dir ({}) must allow O_DIRECT (a disk file system, not tmpfs)",
            std::env::temp_dir().display()
        );
        let bs = blocks(&d);
        assert_eq!(bs.len(), 3);
        for b in &bs[..2] {
            assert_eq!(w.append(b).unwrap(), BLOCK as u64);
        }
        assert!(w.is_direct(), "whole blocks went direct");
        // What was announced is readable through another descriptor, before the end.
        let mut got = vec![0; 2 * BLOCK];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(got, d[..2 * BLOCK]);
        assert_eq!(w.append(&bs[2]).unwrap(), 12_345);
        assert!(!w.is_direct(), "the tail was written plainly");
        let mut all = Vec::new();
        File::open(tmp.path())
            .unwrap()
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, d);
    }

    #[test]
    fn a_refused_direct_write_goes_on_through_the_page_cache() {
        let (tmp, _) = file();
        let d = data(3 * BLOCK + 1);
        let mut w = Direct::new(tmp.as_file(), true);
        assert!(w.is_direct(), "the test's temp dir must allow O_DIRECT");
        let bs = blocks(&d);
        // A direct write that is not a whole number of device blocks: the kernel refuses it
        // (EINVAL); it and everything after go through the page cache.
        let mut total = w.write_all(&bs[0].filled()[..1000]).unwrap();
        assert!(!w.is_direct(), "refused, then plain");
        total += w.write_all(&bs[0].filled()[1000..]).unwrap();
        total += bs[1..].iter().map(|b| w.append(b).unwrap()).sum::<u64>();
        assert_eq!(total, d.len() as u64);
        assert_eq!(std::fs::read(tmp.path()).unwrap(), d);
    }

    #[test]
    fn short_downloads_and_empty_ones() {
        for n in [0, 1, ALIGN, BLOCK - 1, BLOCK, BLOCK + 1] {
            let (tmp, _) = file();
            let d = data(n);
            let mut w = Direct::new(tmp.as_file(), true);
            let total: u64 = blocks(&d).iter().map(|b| w.append(b).unwrap()).sum();
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
        let total: u64 = blocks(&d).iter().map(|b| w.append(b).unwrap()).sum();
        assert_eq!(total, d.len() as u64);
        assert_eq!(std::fs::read(tmp.path()).unwrap(), d);
    }

    #[test]
    fn a_full_disk_is_an_error_not_a_short_file() {
        // /dev/full: every write fails with ENOSPC (and it takes no O_DIRECT: plain writes).
        let full = File::options().write(true).open("/dev/full").unwrap();
        let mut w = Direct::new(&full, true);
        let err = blocks(&data(BLOCK + 1))
            .iter()
            .try_for_each(|b| w.append(b).map(|_| ()));
        assert_eq!(err.unwrap_err().raw_os_error(), Some(28));
    }

    #[test]
    fn a_block_takes_what_fits_and_is_reused_empty() {
        let mut b = Block::new().unwrap();
        assert_eq!(b.filled().as_ptr() as usize % ALIGN, 0, "aligned");
        assert_eq!(b.push(&data(BLOCK - 10)), BLOCK - 10);
        assert_eq!(b.push(&data(100)), 10, "only what fits");
        assert!(b.is_full());
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.push(b"abc"), 3);
        assert_eq!(b.filled(), b"abc");
    }
}
