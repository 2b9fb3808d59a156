//! A server process under test (`ferry serve`, `ferry proxy`): stopped with SIGTERM on
//! purpose, killed at the end otherwise — and a test fails if the process died on its
//! own meanwhile (a panicking server thread exits it).

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

pub struct Running {
    pub child: Child,
    /// Stopped on purpose (`stop`): its exit is expected.
    stopped: bool,
}

impl Running {
    pub fn new(child: Child) -> Running {
        Running {
            child,
            stopped: false,
        }
    }

    /// SIGTERM, then waits for the exit status (at most `within`).
    pub fn stop(&mut self, within: Duration) -> ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        self.wait_exit(within)
    }

    /// Waits for an exit the test caused (a signal it sent): the status, at most
    /// `within` from now.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                self.stopped = true;
                return st;
            }
            assert!(
                start.elapsed() < within,
                "the server did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// utime + stime of the process, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let f: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let died = if self.stopped {
            None
        } else {
            self.child.try_wait().ok().flatten()
        };
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(st) = died {
            if !std::thread::panicking() {
                panic!("the server process died during the test: {st}");
            }
        }
    }
}
