//! JUnit XML, for CI systems that show test results: one test suite per scenario, one test
//! case per step.

use std::fmt::Write;

use crate::report::{Report, ScenarioReport, Status};

/// The whole report: `testsuites` with one `testsuite` per scenario.
pub fn render(report: &Report) -> String {
    let total_ms: u64 = report.scenarios.iter().map(|s| s.duration_ms).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"bitpoll-harness\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{}\">",
        report.summary.passed + report.summary.failed + report.summary.skipped,
        report.summary.failed,
        report.summary.skipped,
        seconds(total_ms)
    );
    for scenario in &report.scenarios {
        testsuite(&mut xml, &scenario.scenario, scenario);
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// One `testsuite` element named `name` for a scenario's steps (a fleet names it `host/scenario`).
pub fn testsuite(xml: &mut String, name: &str, scenario: &ScenarioReport) {
    let count = |status| scenario.steps.iter().filter(|s| s.status == status).count();
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{}\">",
        escape(name),
        scenario.steps.len(),
        count(Status::Failed),
        count(Status::Skipped),
        seconds(scenario.duration_ms)
    );
    let _ = writeln!(
        xml,
        "    <properties><property name=\"target\" value=\"{}\"/></properties>",
        escape(&scenario.target)
    );
    for step in &scenario.steps {
        let _ = write!(
            xml,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
            escape(name),
            escape(&step.name),
            seconds(step.duration_ms)
        );
        let message = escape(step.message.as_deref().unwrap_or(""));
        match step.status {
            Status::Passed => xml.push_str("/>\n"),
            Status::Skipped => {
                let _ = writeln!(
                    xml,
                    ">\n      <skipped message=\"{message}\"/>\n    </testcase>"
                );
            }
            Status::Failed => {
                let body = step
                    .detail
                    .as_ref()
                    .map(|detail| {
                        let mut text = format!("{}\n{}", detail.action, detail.output);
                        if let Some(journal) = &detail.journal {
                            text.push_str("\n--- journal ---\n");
                            text.push_str(journal);
                        }
                        text
                    })
                    .unwrap_or_default();
                let _ = writeln!(
                    xml,
                    ">\n      <failure message=\"{message}\">{}</failure>\n    </testcase>",
                    escape(&body)
                );
            }
        }
    }
    xml.push_str("  </testsuite>\n");
}

/// Milliseconds as JUnit's seconds.
pub fn seconds(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            // XML 1.0 forbids most control characters even when escaped.
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => escaped.push('\u{FFFD}'),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("a<b & \"c\"\u{1b}"),
            "a&lt;b &amp; &quot;c&quot;\u{FFFD}"
        );
    }
}
