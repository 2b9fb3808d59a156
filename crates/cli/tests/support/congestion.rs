//! What TCP congestion control the kernel says sockets have (`ss -ti`), for the tests of
//! `--congestion`.
#![allow(dead_code)] // each test binary uses a part of these helpers

/// An algorithm other than the machine's default (so a test of it can fail), always
/// built in: reno, or cubic where reno is the default.
pub fn other_than_default() -> &'static str {
    let default = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .expect("read net.ipv4.tcp_congestion_control");
    if default.trim() == "reno" {
        "cubic"
    } else {
        "reno"
    }
}

/// The algorithm of each established TCP socket `ss` matches with `filter`
/// (e.g. `( sport = :8080 )`), in `ss`'s order; with what `ss` printed.
pub fn algorithms(filter: &str) -> (Vec<String>, String) {
    let out = std::process::Command::new("ss")
        .args(["-tniH", "state", "established", filter])
        .output()
        .expect("ss is installed by scripts/install-test-deps.sh");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // `ss -i` puts each socket's details on an indented line, the algorithm first.
    let algs = text
        .lines()
        .filter(|l| l.starts_with(char::is_whitespace))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    (algs, text)
}
