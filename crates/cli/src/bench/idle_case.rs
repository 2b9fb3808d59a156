//! One case of the connections scenario: each subject verified (one GET, every byte
//! checked, untimed), then its runs, interleaved with the other subjects'.

use std::collections::BTreeMap;
use std::io;

use super::common::{Checksum, Method, Scenario};
use super::{idle, idle_report, progress, table, Case};

/// What a case gave: a summary per subject that ran, and why the others did not.
pub struct Outcome {
    pub rows: Vec<idle_report::IdleSummary>,
    pub skipped: Vec<(Method, String)>,
}

/// One case of the connections scenario: verify each subject, then its runs,
/// interleaved.
pub struct IdleCase<'a> {
    pub case: &'a Case,
    pub subjects: &'a idle::Subjects,
    /// The file's bytes and checksum.
    pub body: &'a [u8],
    pub want: Checksum,
    pub runs: usize,
    /// Seconds of each wrk run.
    pub secs: u64,
}

impl IdleCase<'_> {
    /// Runs every subject `methods` names (verify, then the runs, interleaved).
    pub fn run(
        &self,
        methods: &[Method],
        progress: &mut progress::Progress,
    ) -> io::Result<Outcome> {
        let methods: Vec<Method> = methods
            .iter()
            .copied()
            .filter(|&m| Scenario::Connections.compares(m))
            .collect();
        let mut per: BTreeMap<Method, Vec<idle::IdleRun>> = BTreeMap::new();
        let mut skipped: Vec<(Method, String)> = Vec::new();
        for &m in &methods {
            match self.subjects.unavailable(m) {
                Some(why) => skipped.push((m, why)),
                None => {
                    per.insert(m, Vec::new());
                }
            }
        }
        for run in 0..=self.runs {
            for &m in &methods {
                let what = if run == 0 {
                    "verifying every byte (untimed)".to_string()
                } else {
                    format!("run {run}/{}", self.runs)
                };
                progress.step(&format!(
                    "{}: {} {what}",
                    table::case_name(self.case),
                    m.name()
                ));
                let Some(v) = per.get_mut(&m) else { continue };
                let r = if run == 0 {
                    self.subjects.verify(m, self.want).map(|()| None)
                } else {
                    self.subjects
                        .run(m, self.case.connections, self.secs, self.body)
                        .map(Some)
                };
                match r {
                    Ok(Some(r)) => v.push(r),
                    Ok(None) => {}
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                        progress.finish();
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("VERIFICATION FAILED: connections / {}: {e}", m.name()),
                        ));
                    }
                    Err(e) => {
                        per.remove(&m);
                        skipped.push((m, format!("unavailable: {e}")));
                    }
                }
            }
        }
        Ok(Outcome {
            rows: idle_report::summarise(&per),
            skipped,
        })
    }
}
