//! `Content-Type` from a file name: nginx's `mime.types` where it names the extension
//! (what clients of nginx already get), else the `mime_guess` table.
//!
//! Deliberate differences from nginx 1.22's table, each with its reason:
//! - `.js` is `text/javascript` (RFC 9239 made it the one JavaScript type; nginx 1.22
//!   still says `application/javascript`), and `.mjs` too (absent from nginx's table,
//!   which serves it as `application/octet-stream`: browsers refuse a module script
//!   of that type).
//! - `.bmp` is `image/bmp`, the IANA name (nginx: `image/x-ms-bmp`).
//! - Types nginx 1.22 lacks come from `mime_guess` (`.wasm` `application/wasm`, `.avif`,
//!   `.webmanifest` …) or from the table below (`.otf` `font/otf` per RFC 8081, `.m4s`
//!   `video/iso.segment` for DASH segments).

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Extensions whose type here is nginx's (or the RFC's), not `mime_guess`'s.
const OVERRIDES: &[(&str, &str)] = &[
    // HLS and DASH: a player checks these.
    ("m3u8", "application/vnd.apple.mpegurl"),
    ("ts", "video/mp2t"),
    ("m4s", "video/iso.segment"),
    // Fonts: RFC 8081's top-level type.
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("otf", "font/otf"),
    ("ttf", "font/ttf"),
    // JavaScript: RFC 9239.
    ("js", "text/javascript"),
    ("mjs", "text/javascript"),
    // Where mime_guess names something else than nginx.
    ("m4a", "audio/x-m4a"),
    ("mid", "audio/midi"),
    ("midi", "audio/midi"),
    ("kar", "audio/midi"),
    ("ra", "audio/x-realaudio"),
    ("rpm", "application/x-redhat-package-manager"),
    ("pdb", "application/x-pilot"),
    ("prc", "application/x-pilot"),
    ("sea", "application/x-sea"),
    ("dll", "application/octet-stream"),
];

/// The MIME type for a file name (`application/octet-stream` when unknown).
pub fn content_type(rel: &[u8]) -> &'static str {
    let path = Path::new(std::ffi::OsStr::from_bytes(rel));
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    if let Some((_, t)) = OVERRIDES.iter().find(|(e, _)| e.eq_ignore_ascii_case(ext)) {
        return t;
    }
    mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("application/octet-stream")
}

#[cfg(test)]
mod tests {
    use super::content_type;

    /// The common web, media and font types, as nginx 1.22's `mime.types` has them
    /// unless the module doc names a reason.
    #[test]
    fn common_types_match_nginx() {
        for (ext, want) in [
            ("html", "text/html"),
            ("htm", "text/html"),
            ("css", "text/css"),
            ("js", "text/javascript"),
            ("mjs", "text/javascript"),
            ("json", "application/json"),
            ("xml", "text/xml"),
            ("txt", "text/plain"),
            ("svg", "image/svg+xml"),
            ("svgz", "image/svg+xml"),
            ("png", "image/png"),
            ("jpg", "image/jpeg"),
            ("jpeg", "image/jpeg"),
            ("gif", "image/gif"),
            ("webp", "image/webp"),
            ("ico", "image/x-icon"),
            ("avif", "image/avif"),
            ("bmp", "image/bmp"),
            ("woff", "font/woff"),
            ("woff2", "font/woff2"),
            ("ttf", "font/ttf"),
            ("otf", "font/otf"),
            ("mp4", "video/mp4"),
            ("webm", "video/webm"),
            ("m3u8", "application/vnd.apple.mpegurl"),
            ("ts", "video/mp2t"),
            ("m4s", "video/iso.segment"),
            ("mpd", "application/dash+xml"),
            ("mp3", "audio/mpeg"),
            ("m4a", "audio/x-m4a"),
            ("ogg", "audio/ogg"),
            ("wasm", "application/wasm"),
            ("pdf", "application/pdf"),
            ("zip", "application/zip"),
            ("gz", "application/gzip"),
            ("wav", "audio/wav"),
            ("rpm", "application/x-redhat-package-manager"),
            ("deb", "application/octet-stream"),
        ] {
            assert_eq!(
                content_type(format!("a/b.{ext}").as_bytes()),
                want,
                ".{ext}"
            );
        }
        assert_eq!(content_type(b"A.TS"), "video/mp2t", "case-insensitive");
        assert_eq!(content_type(b"noext"), "application/octet-stream");
    }

    /// Every extension of nginx's own table, where the machine has it
    /// (`/etc/nginx/mime.types`, from `scripts/install-peers.sh`), is what nginx says or
    /// one of the documented differences.
    #[test]
    fn nginx_table_on_this_machine() {
        let Ok(table) = std::fs::read_to_string("/etc/nginx/mime.types") else {
            println!("nginx_table_on_this_machine: /etc/nginx/mime.types absent, table above only");
            return;
        };
        let differs = ["js", "bmp"];
        let mut checked = 0;
        for line in table.lines().map(str::trim) {
            let Some(line) = line.strip_suffix(';') else {
                continue;
            };
            let mut words = line.split_whitespace();
            let Some(ty) = words.next() else { continue };
            for ext in words.filter(|e| !differs.contains(e)) {
                assert_eq!(content_type(format!("x.{ext}").as_bytes()), ty, ".{ext}");
                checked += 1;
            }
        }
        assert!(
            checked > 50,
            "read only {checked} extensions of nginx's table"
        );
    }
}
