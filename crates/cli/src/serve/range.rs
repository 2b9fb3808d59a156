//! `Range: bytes=…` against a file's size, with nginx's rules: a syntax error or no
//! satisfiable range → 416; more than [`MAX_RANGES`] ranges, or ranges adding up to more
//! than the file → the whole file (200), so an answer is never larger than the file
//! plus its part headers.

/// Most ranges honoured in one request (nginx has no default cap; a cap bounds the
/// multipart work one request can ask for).
pub const MAX_RANGES: usize = 16;

/// What to send for a `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// Ignore the header: 200 with the whole file.
    Full,
    /// 206 with these `(start, len)` ranges, in request order.
    Parts(Vec<(u64, u64)>),
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Evaluates a `Range` header value against a file of `size` bytes.
pub fn evaluate(header: &str, size: u64) -> Ranges {
    let Some((unit, specs)) = header.split_once('=') else {
        return Ranges::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranges::Full; // RFC 9110 §14.2: ignore units we do not know
    }
    let mut parts = Vec::new();
    let mut total: u64 = 0;
    for spec in specs.split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            continue; // `bytes=0-1,,2-3`: empty list elements are allowed (RFC 9110 §5.6.1)
        }
        let Some((first, last)) = spec.split_once('-') else {
            return Ranges::Unsatisfiable;
        };
        let (first, last) = (first.trim(), last.trim());
        let range = if first.is_empty() {
            // Suffix: the last `n` bytes.
            let Some(n) = number(last) else {
                return Ranges::Unsatisfiable;
            };
            if n == 0 || size == 0 {
                None
            } else {
                let n = n.min(size);
                Some((size - n, n))
            }
        } else {
            let Some(start) = number(first) else {
                return Ranges::Unsatisfiable;
            };
            let end = if last.is_empty() {
                u64::MAX
            } else {
                match number(last) {
                    Some(end) if end >= start => end,
                    _ => return Ranges::Unsatisfiable,
                }
            };
            (start < size).then(|| (start, end.min(size - 1) - start + 1))
        };
        if let Some(r) = range {
            parts.push(r);
            match total.checked_add(r.1) {
                Some(t) if t <= size && parts.len() <= MAX_RANGES => total = t,
                _ => return Ranges::Full,
            }
        }
    }
    if parts.is_empty() {
        Ranges::Unsatisfiable
    } else {
        Ranges::Parts(parts)
    }
}

/// Digits only (no sign, no spaces inside), at most 19 of them.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_suffix_and_open_ranges() {
        assert_eq!(evaluate("bytes=0-0", 10), Ranges::Parts(vec![(0, 1)]));
        assert_eq!(evaluate("bytes=2-", 10), Ranges::Parts(vec![(2, 8)]));
        assert_eq!(evaluate("bytes=-3", 10), Ranges::Parts(vec![(7, 3)]));
        assert_eq!(evaluate("bytes=-30", 10), Ranges::Parts(vec![(0, 10)]));
        assert_eq!(evaluate("bytes=5-100", 10), Ranges::Parts(vec![(5, 5)]));
        assert_eq!(evaluate("Bytes = 1-2", 10), Ranges::Parts(vec![(1, 2)]));
    }

    #[test]
    fn unsatisfiable_and_invalid() {
        assert_eq!(evaluate("bytes=10-", 10), Ranges::Unsatisfiable);
        assert_eq!(evaluate("bytes=-0", 10), Ranges::Unsatisfiable);
        assert_eq!(evaluate("bytes=0-0", 0), Ranges::Unsatisfiable);
        assert_eq!(evaluate("bytes=5-2", 10), Ranges::Unsatisfiable);
        assert_eq!(evaluate("bytes=a-b", 10), Ranges::Unsatisfiable);
        assert_eq!(evaluate("bytes=+1-2", 10), Ranges::Unsatisfiable);
        assert_eq!(evaluate("bytes", 10), Ranges::Unsatisfiable);
        assert_eq!(
            evaluate("bytes=99999999999999999999-", 10),
            Ranges::Unsatisfiable
        );
        assert_eq!(evaluate("items=0-1", 10), Ranges::Full);
    }

    #[test]
    fn several_ranges_never_exceed_the_file() {
        assert_eq!(
            evaluate("bytes=0-1, 4-5", 10),
            Ranges::Parts(vec![(0, 2), (4, 2)])
        );
        assert_eq!(evaluate("bytes=0-9,0-9", 10), Ranges::Full);
        let many: Vec<String> = (0..=MAX_RANGES).map(|i| format!("{i}-{i}")).collect();
        assert_eq!(
            evaluate(&format!("bytes={}", many.join(",")), 100),
            Ranges::Full
        );
    }
}
