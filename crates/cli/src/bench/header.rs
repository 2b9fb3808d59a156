//! The run's context, printed first and written into the JSON: machine, kernel,
//! backends really available, placement, and which peer programs were found.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The machine and environment of this run.
pub struct Context {
    pub cpu_model: String,
    pub cpus: usize,
    pub kernel: String,
    pub date: String,
    /// (method, what runs it or why it cannot run)
    pub backends: Vec<(&'static str, String)>,
    pub placement: String,
    /// net.ipv4.tcp_congestion_control: every loopback socket of the run has it.
    pub congestion: Option<String>,
    /// (program, found at)
    pub peers: Vec<(&'static str, Option<String>)>,
}

/// `YYYY-MM-DD HH:MM UTC` of now (civil-from-days, no time-zone database).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Where `prog` is on `PATH` (or in /usr/sbin), if anywhere.
pub fn which(prog: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .or_else(|| {
            let sbin = Path::new("/usr/sbin").join(prog);
            sbin.is_file().then(|| sbin.display().to_string())
        })
}

impl Context {
    pub fn gather(backends: Vec<(&'static str, String)>, placement: String) -> Context {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        Context {
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel,
            date: utc_now(),
            backends,
            placement,
            congestion: crate::congestion::system_default(),
            peers: ["nginx", "haproxy", "wrk"]
                .into_iter()
                .map(|p| (p, which(p)))
                .collect(),
        }
    }

    pub fn print(&self) {
        println!("ferry bench {} — {}", env!("CARGO_PKG_VERSION"), self.date);
        println!(
            "machine: {}, {} CPUs, {} {} {}",
            self.cpu_model,
            self.cpus,
            std::env::consts::OS,
            self.kernel,
            std::env::consts::ARCH
        );
        for (m, b) in &self.backends {
            println!("  {m:<16} {b}");
        }
        println!("placement: {}", self.placement);
        match self.congestion.as_deref() {
            Some(c) if crate::congestion::paces(c) => println!(
                "tcp congestion control: {c} — it paces every send, on loopback in TCP itself:\n\
                 \x20 bulk and proxy figures carry its timers (docs/benchmarks.md, \"Congestion control\")"
            ),
            Some(c) => println!("tcp congestion control: {c}"),
            None => println!("tcp congestion control: unknown"),
        }
        let peers: Vec<String> = self
            .peers
            .iter()
            .map(|(p, at)| match at {
                Some(at) => format!("{p} ({at})"),
                None => format!("{p} not found"),
            })
            .collect();
        println!(
            "peers: {} — http-static and https-static compare nginx with ferry serve under wrk,\n\
             \x20 tcp-proxy and tls-proxy HAProxy with ferry proxy (absent peers: scripts/install-peers.sh;\n\
             \x20 their rows say \"not run\")",
            peers.join(", ")
        );
        println!();
    }

    pub fn json(&self) -> Value {
        json!({
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "kernel": self.kernel,
            "cpus": self.cpus,
            "cpu_model": self.cpu_model,
            "ferry_version": env!("CARGO_PKG_VERSION"),
            "date": self.date,
            "placement": self.placement,
            "tcp_congestion_control": self.congestion,
            "backends": self.backends.iter().map(|(m, b)| json!({"method": m, "backend": b})).collect::<Vec<_>>(),
            "peers": self.peers.iter().map(|(p, at)| json!({"program": p, "path": at})).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_date_is_a_plausible_utc_timestamp() {
        let d = super::utc_now();
        assert_eq!(d.len(), "2026-11-23 14:40 UTC".len(), "{d}");
        assert!(d.starts_with("20"), "{d}");
        assert!(d.ends_with(" UTC"));
    }
}
