//! `Range: bytes=...` for blob requests (RFC 9110 14.1.2), as containerd sends it to resume.
//! One range only; anything we do not understand is ignored (the server may always answer 200
//! with the whole blob), but a syntactically valid range that starts past the end is a 416.

use crate::blob::Window;

/// Outcome of interpreting a `Range` header against a blob of `total` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Serve the whole blob (no header, several ranges, or a form we ignore).
    Full,
    /// Serve `[start, end)` as 206.
    Partial(Window),
    /// 416 Range Not Satisfiable.
    Unsatisfiable,
}

/// Parses `value` for a blob of `total` bytes.
pub fn interpret(value: Option<&str>, total: Option<u64>) -> RangeOutcome {
    let Some(v) = value else {
        return RangeOutcome::Full;
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeOutcome::Full;
    };
    if spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeOutcome::Full;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    // Without a known length only "from N to the end" can be served as a window.
    let Some(total) = total else {
        return RangeOutcome::Full;
    };
    let (start, end) = match (a.trim().is_empty(), num(a), num(b)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(n)) => {
            if n == 0 {
                return RangeOutcome::Unsatisfiable;
            }
            (total.saturating_sub(n), total)
        }
        (false, Some(s), None) if b.trim().is_empty() => (s, total),
        (false, Some(s), Some(e)) if e >= s => (s, e.saturating_add(1).min(total)),
        _ => return RangeOutcome::Full,
    };
    if start >= total {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial(Window { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(start: u64, end: u64) -> RangeOutcome {
        RangeOutcome::Partial(Window { start, end })
    }

    #[test]
    fn forms() {
        assert_eq!(interpret(None, Some(10)), RangeOutcome::Full);
        assert_eq!(interpret(Some("bytes=3-"), Some(10)), w(3, 10));
        assert_eq!(interpret(Some("bytes=3-5"), Some(10)), w(3, 6));
        assert_eq!(interpret(Some("bytes=3-500"), Some(10)), w(3, 10));
        assert_eq!(interpret(Some("bytes=-4"), Some(10)), w(6, 10));
        assert_eq!(interpret(Some("bytes=-40"), Some(10)), w(0, 10));
        assert_eq!(interpret(Some("bytes=0-0"), Some(10)), w(0, 1));
        assert_eq!(
            interpret(Some("bytes=10-"), Some(10)),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(
            interpret(Some("bytes=-0"), Some(10)),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(interpret(Some("bytes=5-3"), Some(10)), RangeOutcome::Full);
        assert_eq!(
            interpret(Some("bytes=1-2,4-5"), Some(10)),
            RangeOutcome::Full
        );
        assert_eq!(interpret(Some("items=1-2"), Some(10)), RangeOutcome::Full);
        assert_eq!(interpret(Some("bytes=a-b"), Some(10)), RangeOutcome::Full);
        assert_eq!(interpret(Some("bytes=+1-2"), Some(10)), RangeOutcome::Full);
        assert_eq!(interpret(Some("bytes=3-"), None), RangeOutcome::Full);
        assert_eq!(
            interpret(Some("bytes=99999999999999999999-"), Some(10)),
            RangeOutcome::Full
        );
    }
}
