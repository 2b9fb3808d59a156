//! No input makes the parser, the path check or the response builder panic: arbitrary
//! bytes (proptest), and the kept corpus of hostile requests in `fuzz/corpus/serve/`
//! (every file there is replayed on every test run).

use proptest::prelude::*;

use super::request::{parse, Parsed};
use super::target;

/// Feeds one input through everything that reads client bytes.
fn exercise(bytes: &[u8]) {
    for cut in [bytes.len(), bytes.len() / 2] {
        if let Parsed::Complete(req, n) = parse(&bytes[..cut]) {
            assert!(n <= cut);
            let _ = target::parse(&req.target);
            if let Some(r) = &req.range {
                for size in [0, 1, 4096, u64::MAX] {
                    if let super::range::Ranges::Parts(p) = super::range::evaluate(r, size) {
                        assert!(p.iter().map(|x| x.1).sum::<u64>() <= size);
                        assert!(p
                            .iter()
                            .all(|&(s, l)| l > 0 && s.checked_add(l).is_some_and(|e| e <= size)));
                    }
                }
            }
        }
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        if let Ok(t) = target::parse(s) {
            assert!(t.components.iter().all(|c| !c.is_empty()
                && c != b"."
                && c != b".."
                && !c.contains(&b'/')
                && !c.contains(&0)));
        }
    }
}

#[test]
fn the_kept_corpus_passes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/serve");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus directory exists") {
        let bytes = std::fs::read(entry.expect("corpus entry").path()).expect("corpus file");
        exercise(&bytes);
        n += 1;
    }
    assert!(n >= 10, "corpus too small: {n} files in {}", dir.display());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes);
    }

    #[test]
    fn request_shaped_input(
        method in "(GET|HEAD|POST|get|G\u{0}T)",
        path in "[/a-z.%0-9A-F\\\\?#@:]{0,40}",
        range in "(bytes=)?[-0-9, ]{0,24}",
        extra in "[ -~]{0,40}",
    ) {
        let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nRange: {range}\r\nX: {extra}\r\n\r\n");
        exercise(req.as_bytes());
    }
}
