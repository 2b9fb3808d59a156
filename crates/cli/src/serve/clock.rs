//! The current time as the two texts a response and a log line need, formatted once
//! per second rather than once per request.

use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub struct Clock {
    second: u64,
    http: String,
    clf: String,
}

impl Clock {
    /// Brings the texts up to date (call once per batch of events).
    pub fn tick(&mut self) {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second == self.second && !self.http.is_empty() {
            return;
        }
        self.second = second;
        self.http = httpdate::fmt_http_date(now);
        self.clf = clf(&self.http);
    }

    /// `Mon, 23 Nov 2026 15:30:00 GMT` (the `Date` header).
    pub fn http(&self) -> &str {
        &self.http
    }

    /// `23/Nov/2026:15:30:00 +0000` (Common Log Format).
    pub fn clf(&self) -> &str {
        &self.clf
    }
}

/// The IMF-fixdate's fields, rearranged: `Mon, 23 Nov 2026 15:30:00 GMT` →
/// `23/Nov/2026:15:30:00 +0000`.
fn clf(http: &str) -> String {
    let f: Vec<&str> = http.split(' ').collect();
    match f.as_slice() {
        [_, day, month, year, time, _] => format!("{day}/{month}/{year}:{time} +0000"),
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn common_log_format_date() {
        assert_eq!(
            super::clf("Mon, 23 Nov 2026 15:30:00 GMT"),
            "23/Nov/2026:15:30:00 +0000"
        );
    }
}
