//! The report for people: one line per step as it finishes, failures with what was run and
//! what came back, and the summary line `N passed, N failed, N skipped` last.

use crate::report::{ScenarioReport, Status, StepReport};
use crate::scenario::duration::format_duration;
use std::time::Duration;

pub fn scenario_header(name: &str, file: &str, target: &str) -> String {
    format!("scenario {name} ({file}) on {target}")
}

pub fn step_lines(step: &StepReport) -> String {
    let duration = format_duration(Duration::from_millis(step.duration_ms));
    let (label, message) = match step.status {
        Status::Passed => ("PASS", String::new()),
        Status::Failed => ("FAIL", step.message.clone().unwrap_or_default()),
        Status::Skipped => ("SKIP", step.message.clone().unwrap_or_default()),
    };
    let mut text = format!("  {label}  {} ({duration})", step.name);
    if !message.is_empty() {
        text.push_str(": ");
        text.push_str(&message);
    }
    if let Some(detail) = &step.detail {
        text.push_str(&format!("\n        {}: {}", step.action, detail.action));
        if let Some(code) = detail.exit_code {
            text.push_str(&format!("\n        exit code: {code}"));
        }
        if let Some(status) = detail.http_status {
            text.push_str(&format!("\n        status: {status}"));
        }
        for (label, body) in [
            ("output", Some(&detail.output)),
            ("journal", detail.journal.as_ref()),
        ] {
            if let Some(body) = body.filter(|body| !body.trim().is_empty()) {
                text.push_str(&format!("\n        {label}:"));
                for line in body.lines() {
                    text.push_str("\n          ");
                    text.push_str(line);
                }
            }
        }
    }
    text
}

pub fn scenario_footer(report: &ScenarioReport) -> String {
    let verdict = match report.status {
        Status::Failed => "FAILED",
        _ => "ok",
    };
    format!(
        "scenario {}: {verdict} in {}",
        report.scenario,
        format_duration(Duration::from_millis(report.duration_ms))
    )
}
