//! Validators and preconditions, as nginx's `etag on; if_modified_since exact` with the
//! RFC 9110 §13.2.2 order: If-Match, else If-Unmodified-Since (412); If-None-Match, else
//! If-Modified-Since (304); then If-Range decides whether Range applies.

use std::time::UNIX_EPOCH;

use super::meta::Meta;
use super::request::Request;

/// `Some(412)` or `Some(304)` when a precondition decides the answer.
pub fn precondition(req: &Request, meta: &Meta, tag: &str) -> Option<u16> {
    if let Some(im) = &req.if_match {
        if !list_matches(im, tag, true) {
            return Some(412);
        }
    } else if let Some(ius) = req.if_unmodified_since.as_deref().and_then(date) {
        if meta.mtime > ius {
            return Some(412);
        }
    }
    if let Some(inm) = &req.if_none_match {
        if list_matches(inm, tag, false) {
            return Some(304);
        }
    } else if let Some(ims) = req.if_modified_since.as_deref().and_then(date) {
        if ims == meta.mtime {
            return Some(304);
        }
    }
    None
}

/// Whether a `Range` may be honoured under `If-Range`: an entity tag must match
/// strongly, a date must equal the modification time exactly.
pub fn if_range_holds(req: &Request, meta: &Meta, tag: &str) -> bool {
    match req.if_range.as_deref() {
        None => true,
        Some(v) if v.starts_with('"') || v.starts_with("W/") => v == tag,
        Some(v) => date(v) == Some(meta.mtime),
    }
}

/// `*` or a comma-separated list of entity tags. Strong comparison refuses weak tags;
/// weak comparison ignores the `W/` prefix. Our tags are always strong.
fn list_matches(list: &str, tag: &str, strong: bool) -> bool {
    if list.trim() == "*" {
        return true;
    }
    list.split(',')
        .map(str::trim)
        .any(|t| match t.strip_prefix("W/") {
            Some(weak) => !strong && weak == tag,
            None => t == tag,
        })
}

fn date(s: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(s).ok()?;
    t.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::super::meta::Kind;
    use super::*;

    fn meta() -> Meta {
        Meta {
            size: 4096,
            mtime: 1_700_000_000,
            mtime_nsec: 0,
            kind: Kind::File,
        }
    }

    #[test]
    fn etag_has_nginx_format() {
        assert_eq!(meta().etag(), "\"6553f100-1000\"");
    }

    #[test]
    fn preconditions_in_rfc_order() {
        let m = meta();
        let tag = m.etag();
        let lm = m.last_modified();
        let mut r = Request::default();
        assert_eq!(precondition(&r, &m, &tag), None);
        r.if_none_match = Some(format!("\"x\", W/{tag}"));
        assert_eq!(precondition(&r, &m, &tag), Some(304));
        r.if_modified_since = Some("Thu, 01 Jan 1970 00:00:00 GMT".into());
        assert_eq!(precondition(&r, &m, &tag), Some(304), "INM wins over IMS");
        r.if_none_match = None;
        assert_eq!(
            precondition(&r, &m, &tag),
            None,
            "IMS is exact, not 'before'"
        );
        r.if_modified_since = Some(lm.clone());
        assert_eq!(precondition(&r, &m, &tag), Some(304));
        r.if_match = Some(format!("W/{tag}"));
        assert_eq!(precondition(&r, &m, &tag), Some(412), "If-Match is strong");
        r.if_match = Some("*".into());
        assert_eq!(precondition(&r, &m, &tag), Some(304));
        r.if_match = None;
        r.if_unmodified_since = Some("Thu, 01 Jan 1970 00:00:00 GMT".into());
        assert_eq!(precondition(&r, &m, &tag), Some(412));
    }

    #[test]
    fn if_range_is_exact() {
        let m = meta();
        let tag = m.etag();
        let mut r = Request {
            if_range: Some(tag.clone()),
            ..Request::default()
        };
        assert!(if_range_holds(&r, &m, &tag));
        r.if_range = Some(format!("W/{tag}"));
        assert!(!if_range_holds(&r, &m, &tag));
        r.if_range = Some(m.last_modified());
        assert!(if_range_holds(&r, &m, &tag));
        r.if_range = Some("Thu, 01 Jan 1970 00:00:00 GMT".into());
        assert!(!if_range_holds(&r, &m, &tag));
    }
}
