//! Scenario outcomes and the printed tally.

use std::time::Duration;

/// How one scenario ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every check held; the text says what was seen (e.g. the negotiated version).
    Pass(String),
    /// A check failed or the peer misbehaved; the text says why.
    Fail(String),
}

/// The outcomes so far, printed as they arrive.
#[derive(Debug, Default)]
pub struct Report {
    results: Vec<(String, bool)>,
}

impl Report {
    /// Records and prints one outcome: `PASS name (1.2s): detail` or `FAIL name (1.2s): reason`
    /// (a multi-line reason is indented under the line).
    pub fn record(&mut self, name: &str, took: Duration, outcome: Outcome) {
        let (passed, text) = match outcome {
            Outcome::Pass(detail) => (true, detail),
            Outcome::Fail(reason) => (false, reason),
        };
        println!("{}", format_line(name, took, passed, &text));
        self.results.push((name.to_owned(), passed));
    }

    /// How many scenarios passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|(_, passed)| *passed).count()
    }

    /// How many scenarios failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// The names of the failed scenarios, in order.
    pub fn failures(&self) -> Vec<&str> {
        self.results
            .iter()
            .filter(|(_, passed)| !passed)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// The closing line: `N passed, N failed`.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed(), self.failed())
    }
}

/// One printed result line.
fn format_line(name: &str, took: Duration, passed: bool, text: &str) -> String {
    let verdict = if passed { "PASS" } else { "FAIL" };
    let mut lines = text.trim().lines();
    let first = lines.next().unwrap_or("");
    let mut out = format!("{verdict} {name} ({:.1}s): {first}", took.as_secs_f64());
    for line in lines {
        out.push_str("\n      ");
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_passes_and_failures() {
        let mut report = Report::default();
        report.record("a", Duration::from_millis(1200), Outcome::Pass("ok".into()));
        report.record("b", Duration::ZERO, Outcome::Fail("broke".into()));
        report.record("c", Duration::ZERO, Outcome::Pass(String::new()));
        assert_eq!(report.passed(), 2);
        assert_eq!(report.failed(), 1);
        assert_eq!(report.failures(), vec!["b"]);
        assert_eq!(report.summary(), "2 passed, 1 failed");
        assert_eq!(Report::default().summary(), "0 passed, 0 failed");
    }

    #[test]
    fn lines_name_the_verdict_and_indent_details() {
        assert_eq!(
            format_line("x/y", Duration::from_millis(1200), true, "fine\n"),
            "PASS x/y (1.2s): fine"
        );
        assert_eq!(
            format_line("z", Duration::ZERO, false, "first\nsecond"),
            "FAIL z (0.0s): first\n      second"
        );
    }
}
