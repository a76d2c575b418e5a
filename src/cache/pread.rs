//! Positioned reads of store files for response bodies (hits and followers of a download).
//!
//! Served bytes are nearly always in the page cache (a hit read again, a download just
//! written), and handing every chunk to the blocking pool then costs more than the read: two
//! thread wake-ups and a copy through tokio's file buffer per 64 KiB (measured: the warm hit
//! path spent more CPU per GB than the hashing uncached stream). So a chunk is first read on
//! the runtime's own thread with `preadv2(RWF_NOWAIT)`, which the kernel answers only from
//! the page cache and never blocks on (EAGAIN instead); only then does the read go to the
//! blocking pool, as before. A kernel or file system without `RWF_NOWAIT` answers EOPNOTSUPP
//! once, and every later read goes to the pool.

use std::fs::File;
use std::io::IoSliceMut;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use rustix::io::{Errno, ReadWriteFlags};

/// Whether `RWF_NOWAIT` is worth trying (cleared for good on the first EOPNOTSUPP).
static NOWAIT: AtomicBool = AtomicBool::new(true);

/// What holds an open store file (a hit's file, a download's temp file).
pub(super) trait HasFile: Send + Sync + 'static {
    fn file(&self) -> &File;
}

impl HasFile for File {
    fn file(&self) -> &File {
        self
    }
}

/// Up to `n` bytes (at least one) of the file at `pos`. Fewer than `n` when the page cache
/// held only part of them; an error at the end of the file (the caller asks only for bytes it
/// knows exist).
pub(super) async fn read_at<H: HasFile>(
    holder: &Arc<H>,
    pos: u64,
    n: usize,
) -> std::io::Result<Bytes> {
    let mut buf = vec![0u8; n];
    if let Some(got) = cached(holder.file(), pos, &mut buf)? {
        buf.truncate(got);
        return Ok(Bytes::from(buf));
    }
    let holder = holder.clone();
    let read = tokio::task::spawn_blocking(move || {
        let got = holder.file().read_at(&mut buf, pos)?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.truncate(got);
        Ok(Bytes::from(buf))
    });
    read.await.map_err(std::io::Error::other)?
}

/// The bytes the page cache holds at `pos`, read without blocking: `None` when it holds none
/// (or the kernel cannot tell without blocking), so the read goes to the pool.
fn cached(file: &File, pos: u64, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    if !NOWAIT.load(Ordering::Relaxed) {
        return Ok(None);
    }
    match rustix::io::preadv2(
        file,
        &mut [IoSliceMut::new(buf)],
        pos,
        ReadWriteFlags::NOWAIT,
    ) {
        // 0 is the end of the file: the blocking read says so with its error.
        Ok(0) => Ok(None),
        Ok(got) => Ok(Some(got)),
        Err(Errno::AGAIN) => Ok(None),
        Err(Errno::OPNOTSUPP | Errno::NOSYS) => {
            NOWAIT.store(false, Ordering::Relaxed);
            tracing::debug!(
                "blob cache: preadv2(RWF_NOWAIT) not supported here; reads go to the blocking pool"
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn reads_the_window_asked_for_and_refuses_past_the_end() {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        tmp.write_all(&data).unwrap();
        let file = Arc::new(tmp.reopen().unwrap());
        let mut pos = 70_000u64;
        let mut got = Vec::new();
        while got.len() < 100_000 {
            let want = (100_000 - got.len()).min(64 * 1024);
            let chunk = read_at(&file, pos, want).await.unwrap();
            assert!(!chunk.is_empty() && chunk.len() <= want);
            pos += chunk.len() as u64;
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, data[70_000..170_000]);
        let past = read_at(&file, data.len() as u64, 10).await.unwrap_err();
        assert_eq!(past.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_page_cache_read_does_not_go_to_the_pool() {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(b"just written, so in the page cache")
            .unwrap();
        let mut buf = [0u8; 11];
        let got = cached(tmp.as_file(), 5, &mut buf).unwrap();
        assert_eq!(
            got,
            Some(11),
            "RWF_NOWAIT read of cached pages (ext4, tmpfs)"
        );
        assert_eq!(&buf, b"written, so");
    }
}
