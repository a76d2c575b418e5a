//! `blob::VerifyingStream`: upstream blob bytes, arbitrarily chunked, with or without the right
//! digest / length, an upstream error, and a Range window.
//! Invariants: the observer is called exactly once; a verified stream passes on exactly the
//! window of the blob and ends cleanly; a stream that does not verify ends with an error and
//! never passes on the window's last byte (the held-back chunk), so a client never receives a
//! complete body that failed verification.
#![no_main]

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use arbitrary::Arbitrary;
use bytes::Bytes;
use futures_util::Stream;
use libfuzzer_sys::fuzz_target;
use portcullis::blob::{Outcome, VerifyingStream, Window};
use portcullis::refs::Digest;

#[derive(Arbitrary, Debug)]
struct Input {
    data: Vec<u8>,
    /// Chunk boundaries (lengths, mod something small).
    cuts: Vec<u8>,
    wrong_digest: bool,
    length: LenSel,
    window: Option<(u16, u16)>,
    fail_after_chunk: Option<u8>,
}

#[derive(Arbitrary, Debug)]
enum LenSel {
    Unknown,
    Right,
    Off(i8),
}

fuzz_target!(|inp: Input| {
    let data = Bytes::from(inp.data);
    let mut chunks: Vec<Result<Bytes, String>> = Vec::new();
    let mut pos = 0usize;
    for c in inp.cuts.iter().chain(std::iter::repeat(&64)) {
        if pos >= data.len() {
            break;
        }
        let n = (*c as usize).min(data.len() - pos); // 0-length chunks allowed
        chunks.push(Ok(data.slice(pos..pos + n)));
        pos += n;
    }
    let failed = inp.fail_after_chunk.map(|k| (k as usize).min(chunks.len()));
    if let Some(k) = failed {
        chunks.truncate(k);
        chunks.push(Err("reset".to_owned()));
    }
    let right = Digest::sha256_of(&data);
    let expected = if inp.wrong_digest {
        Digest::sha256_of(&[&data[..], b"x"].concat())
    } else {
        right.clone()
    };
    let expected_len = match inp.length {
        LenSel::Unknown => None,
        LenSel::Right => Some(data.len() as u64),
        LenSel::Off(d) => Some((data.len() as i64 + d as i64).max(0) as u64),
    };
    let window = inp.window.map(|(a, b)| {
        let (a, b) = (a as u64 % (data.len() as u64 + 1), b as u64 % (data.len() as u64 + 1));
        Window {
            start: a.min(b),
            end: a.max(b),
        }
    });
    let seen: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let s2 = seen.clone();
    let mut stream = VerifyingStream::new(
        futures_util::stream::iter(chunks),
        expected,
        expected_len,
        window,
        None,
        Box::new(move |o: &Outcome| s2.lock().unwrap().push(o.clone())),
    );
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    let mut error = false;
    loop {
        match Pin::new(&mut stream).poll_next(&mut cx) {
            Poll::Pending => panic!("iter stream is never pending"),
            Poll::Ready(None) => break,
            Poll::Ready(Some(Ok(frame))) => {
                assert!(!error, "data after an error");
                out.extend_from_slice(&frame.into_data().expect("data frame"));
            }
            Poll::Ready(Some(Err(_))) => {
                error = true;
            }
        }
        if error {
            // hyper stops at the first error; polling once more must not yield data.
            if let Poll::Ready(Some(Ok(_))) = Pin::new(&mut stream).poll_next(&mut cx) {
                panic!("data after an error");
            }
            break;
        }
    }
    drop(stream);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "observer called {} times", seen.len());
    let w = window.unwrap_or(Window {
        start: 0,
        end: data.len() as u64,
    });
    let want = &data[w.start as usize..w.end as usize];
    let should_verify = !inp.wrong_digest
        && failed.is_none()
        && expected_len.is_none_or(|n| n == data.len() as u64);
    if should_verify {
        assert!(!error, "a good blob ended with an error: {:?}", seen[0]);
        assert_eq!(seen[0], Outcome::Verified { bytes: data.len() as u64 });
        assert_eq!(out, want, "verified stream passed on the wrong bytes");
    } else {
        assert!(error, "a bad blob ended cleanly: {:?}", seen[0]);
        assert!(!matches!(seen[0], Outcome::Verified { .. }));
        assert!(want.starts_with(&out), "output is not a prefix of the window");
        if !want.is_empty() {
            assert!(out.len() < want.len(), "a bad blob's whole window was passed on");
        }
    }
});
