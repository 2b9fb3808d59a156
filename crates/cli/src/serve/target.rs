//! The request target → a path beneath the root: percent-decode, then normalise
//! (`.`/`..`, repeated slashes), then check. Anything that could name a file outside the
//! root, or that a file system would read differently from us, is refused (400).

use percent_encoding::{percent_decode, percent_encode, AsciiSet, CONTROLS};

/// A request target reduced to a path relative to the served root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Path components below the root, decoded, never empty, `.` or `..`.
    pub components: Vec<Vec<u8>>,
    /// The decoded path ended with `/` (a directory was asked for).
    pub trailing_slash: bool,
    /// The query, without `?`, as it arrived (kept for a redirect's `Location`).
    pub query: Option<String>,
}

/// Bytes escaped in a path segment of a `Location` we write: controls, non-ASCII,
/// the separators and delimiters of a URI, and `%` itself.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'`')
    .add(b'{')
    .add(b'}');

impl Target {
    /// The relative path bytes (`a/b/c`), empty for the root itself.
    pub fn relative(&self) -> Vec<u8> {
        self.components.join(&b'/')
    }

    /// The normalised path as an absolute path (`/a/b%20c`), every segment escaped: what
    /// a redirect may point at. Built from the components (never empty), it cannot start
    /// with `//` or a scheme, so it never leaves this host — the target as it arrived
    /// could (`//evil.example/..%2fdir` → `Location: //evil.example/…`).
    pub fn path(&self) -> String {
        let mut out = String::from("/");
        for (i, c) in self.components.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            out.extend(percent_encode(c, SEGMENT));
        }
        out
    }
}

/// Why a target is refused: always 400 Bad Request, the reason for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadTarget {
    /// Not origin-form (`/…`) nor absolute-form (`http://host/…`).
    NotAPath,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// A NUL byte, decoded or not.
    Nul,
    /// A backslash, decoded or not (Windows-style separators are not paths here).
    Backslash,
    /// `..` that would climb above the root.
    AboveRoot,
}

/// Parses the request target of a GET/HEAD.
pub fn parse(target: &str) -> Result<Target, BadTarget> {
    let origin = strip_absolute_form(target)?;
    let (path, query) = match origin.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (origin, None),
    };
    // A fragment is never sent by a client; refuse to guess what it means.
    let path = path.split('#').next().unwrap_or_default();
    if !path.starts_with('/') {
        return Err(BadTarget::NotAPath);
    }
    check_escapes(path.as_bytes())?;
    let decoded: Vec<u8> = percent_decode(path.as_bytes()).collect();
    if decoded.contains(&0) {
        return Err(BadTarget::Nul);
    }
    if decoded.contains(&b'\\') {
        return Err(BadTarget::Backslash);
    }
    let mut components: Vec<Vec<u8>> = Vec::new();
    for part in decoded.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if components.pop().is_none() {
                    return Err(BadTarget::AboveRoot);
                }
            }
            name => components.push(name.to_vec()),
        }
    }
    let last = decoded.rsplit(|&b| b == b'/').next().unwrap_or_default();
    let trailing_slash = decoded.ends_with(b"/") || last == b"." || last == b"..";
    Ok(Target {
        components,
        trailing_slash,
        query,
    })
}

/// `http://host[:port]/path` → `/path` (RFC 9112 §3.2.2: servers accept absolute-form).
/// The authority is not used: this server has one root.
fn strip_absolute_form(target: &str) -> Result<&str, BadTarget> {
    let lower = |n: usize| target.get(..n).map(str::to_ascii_lowercase);
    let rest = if lower(7).as_deref() == Some("http://") {
        &target[7..]
    } else if lower(8).as_deref() == Some("https://") {
        &target[8..]
    } else {
        return Ok(target);
    };
    match rest.find('/') {
        Some(i) if !rest[..i].contains(['?', '#', '@', '\\', '%']) => Ok(&rest[i..]),
        None if !rest.contains(['?', '#', '@', '\\', '%']) => Ok("/"),
        _ => Err(BadTarget::NotAPath),
    }
}

fn check_escapes(path: &[u8]) -> Result<(), BadTarget> {
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' {
            let ok = path.len() > i + 2
                && path[i + 1].is_ascii_hexdigit()
                && path[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(BadTarget::BadEscape);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(t: &str) -> Result<(String, bool), BadTarget> {
        parse(t).map(|t| (String::from_utf8(t.relative()).unwrap(), t.trailing_slash))
    }

    #[test]
    fn redirect_paths_are_normalised_and_stay_on_this_host() {
        let path = |t: &str| parse(t).unwrap().path();
        assert_eq!(path("//evil.com/..%2fsub"), "/sub");
        assert_eq!(path("///evil.com/../sub"), "/sub");
        assert_eq!(path("/a%20b/c%3Fd%23e"), "/a%20b/c%3Fd%23e");
        assert_eq!(path("/%C3%A9t%C3%A9"), "/%C3%A9t%C3%A9");
        assert_eq!(path("/x/%2e%2e/y"), "/y");
        assert_eq!(path("/"), "/");
        for t in [
            "//a",
            "//a/b",
            "/%2f%2fa",
            "http://h//x",
            "/./x/../%2F%2Fevil",
        ] {
            let p = path(t);
            assert!(!p.starts_with("//") && !p.contains(':'), "{t} → {p}");
        }
    }

    #[test]
    fn plain_paths_normalise() {
        assert_eq!(rel("/"), Ok((String::new(), true)));
        assert_eq!(rel("/a/b.txt"), Ok(("a/b.txt".into(), false)));
        assert_eq!(rel("//a///b/"), Ok(("a/b".into(), true)));
        assert_eq!(rel("/a/./b/../c"), Ok(("a/c".into(), false)));
        assert_eq!(rel("/a/b/.."), Ok(("a".into(), true)));
        assert_eq!(rel("/a%20b?x=1"), Ok(("a b".into(), false)));
        assert_eq!(rel("http://example.com/x/y"), Ok(("x/y".into(), false)));
        assert_eq!(rel("HTTP://example.com"), Ok((String::new(), true)));
    }

    #[test]
    fn escapes_above_the_root_and_tricks_are_refused() {
        assert_eq!(rel("/../etc/passwd"), Err(BadTarget::AboveRoot));
        assert_eq!(rel("/%2e%2e/%2e%2e/etc/passwd"), Err(BadTarget::AboveRoot));
        assert_eq!(rel("/a/%2E%2E/%2e%2e/x"), Err(BadTarget::AboveRoot));
        assert_eq!(rel("/a%00b"), Err(BadTarget::Nul));
        assert_eq!(rel("/a%5c..%5c..%5cetc"), Err(BadTarget::Backslash));
        assert_eq!(rel("/a\\b"), Err(BadTarget::Backslash));
        assert_eq!(rel("/a%zz"), Err(BadTarget::BadEscape));
        assert_eq!(rel("/a%2"), Err(BadTarget::BadEscape));
        assert_eq!(rel("*"), Err(BadTarget::NotAPath));
        assert_eq!(rel("a/b"), Err(BadTarget::NotAPath));
        assert_eq!(rel("http://evil@host/x"), Err(BadTarget::NotAPath));
        assert_eq!(rel("http://host%2f..%2f/x"), Err(BadTarget::NotAPath));
        // A decoded slash is a separator too: it cannot smuggle `..` past the check.
        assert_eq!(rel("/a%2f..%2f..%2fx"), Err(BadTarget::AboveRoot));
    }
}
