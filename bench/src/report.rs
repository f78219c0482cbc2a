//! The one table printed at the end.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// A performance target missed: reported, not fatal.
    Miss,
    /// A correctness failure or an error: makes the exit code non-zero.
    Fail,
    /// A figure without a target.
    Info,
}

pub struct Row {
    pub scenario: String,
    pub figure: String,
    pub value: String,
    pub target: String,
    pub verdict: Verdict,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    fn push(
        &mut self,
        scenario: &str,
        figure: &str,
        value: String,
        target: &str,
        verdict: Verdict,
    ) {
        self.rows.push(Row {
            scenario: scenario.to_owned(),
            figure: figure.to_owned(),
            value,
            target: target.to_owned(),
            verdict,
        });
    }

    pub fn info(&mut self, scenario: &str, figure: &str, value: String) {
        self.push(scenario, figure, value, "", Verdict::Info);
    }

    /// A performance figure against its target.
    pub fn perf(&mut self, scenario: &str, figure: &str, value: String, target: &str, ok: bool) {
        self.push(
            scenario,
            figure,
            value,
            target,
            if ok { Verdict::Pass } else { Verdict::Miss },
        );
    }

    /// A correctness figure: not meeting it fails the run.
    pub fn check(&mut self, scenario: &str, figure: &str, value: String, target: &str, ok: bool) {
        self.push(
            scenario,
            figure,
            value,
            target,
            if ok { Verdict::Pass } else { Verdict::Fail },
        );
    }

    pub fn error(&mut self, scenario: &str, message: &str) {
        // Keep the table readable: the full message went to stderr already.
        let first = message.lines().next().unwrap_or("");
        let short: String = first.chars().take(120).collect();
        self.push(scenario, "error", short, "none", Verdict::Fail);
    }

    pub fn failed(&self) -> bool {
        self.rows.iter().any(|r| r.verdict == Verdict::Fail)
    }

    pub fn print(&self) {
        let header = ["scenario", "figure", "value", "target", "pass/miss"];
        let cells: Vec<[String; 5]> = self
            .rows
            .iter()
            .map(|r| {
                let verdict = match r.verdict {
                    Verdict::Pass => "pass",
                    Verdict::Miss => "MISS",
                    Verdict::Fail => "FAIL",
                    Verdict::Info => "-",
                };
                let target = if r.target.is_empty() {
                    "-".to_owned()
                } else {
                    r.target.clone()
                };
                [
                    r.scenario.clone(),
                    r.figure.clone(),
                    r.value.clone(),
                    target,
                    verdict.to_owned(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cols: [&str; 5]| {
            let parts: Vec<String> = cols
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            println!("| {} |", parts.join(" | "));
        };
        line(header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        println!("|-{}-|", rule.join("-|-"));
        for row in &cells {
            line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
        }
    }
}
