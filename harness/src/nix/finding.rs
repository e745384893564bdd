//! One difference between two baselines (a step's status, a metric, a scenario that did not
//! run), how severe it is under the thresholds, and its line in the diff for people.

use super::thresholds::{MetricKind, Thresholds};
use crate::report::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Regression,
    Improvement,
    Info,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// A step that did not fail before (or did not exist) and fails now, or passed and is now
    /// skipped.
    Step {
        key: String,
        was: Option<Status>,
        now: Option<Status>,
    },
    Metric {
        key: String,
        was: Option<f64>,
        now: Option<f64>,
    },
    /// A scenario of the baseline of which nothing ran this time (`--scenario` chose others,
    /// or its check is gone): one line instead of one per step and metric.
    NotRun {
        scenario: String,
        steps: usize,
        metrics: usize,
    },
}

impl Finding {
    pub fn key(&self) -> &str {
        match self {
            Finding::Step { key, .. } | Finding::Metric { key, .. } => key,
            Finding::NotRun { scenario, .. } => scenario,
        }
    }

    pub fn severity(&self, thresholds: &Thresholds) -> Severity {
        match self {
            Finding::Step { was, now, .. } => match (was, now) {
                (Some(Status::Passed), Some(Status::Failed | Status::Skipped)) => {
                    Severity::Regression
                }
                (Some(Status::Skipped) | None, Some(Status::Failed)) => Severity::Regression,
                (Some(Status::Failed), Some(Status::Passed | Status::Skipped))
                | (Some(Status::Skipped), Some(Status::Passed)) => Severity::Improvement,
                _ => Severity::Info,
            },
            Finding::Metric { key, was, now } => match (was, now) {
                (Some(was), Some(now)) => {
                    let kind = MetricKind::of(key);
                    if thresholds.regressed(kind, *was, *now) {
                        Severity::Regression
                    } else if thresholds.regressed(kind, *now, *was) {
                        Severity::Improvement
                    } else {
                        Severity::Info
                    }
                }
                _ => Severity::Info,
            },
            Finding::NotRun { .. } => Severity::Info,
        }
    }

    /// The finding as one line of the diff for people.
    pub fn line(&self, thresholds: &Thresholds) -> String {
        match self {
            Finding::Step { key, was, now } => match (was, now) {
                (Some(was), Some(now)) if was == now => {
                    format!("{key}: still {}", status_name(*now))
                }
                (Some(was), Some(now)) => {
                    format!("{key}: {} -> {}", status_name(*was), status_name(*now))
                }
                (None, Some(now)) => format!("{key}: new step, {}", status_name(*now)),
                (Some(was), None) => {
                    format!("{key}: step no longer run (was {})", status_name(*was))
                }
                (None, None) => key.clone(),
            },
            Finding::Metric { key, was, now } => {
                let kind = MetricKind::of(key);
                match (was, now) {
                    (Some(was), Some(now)) => format!(
                        "{key}: {} -> {} ({}; {})",
                        show(kind, *was),
                        show(kind, *now),
                        change(kind, *was, *now),
                        thresholds.describe(kind)
                    ),
                    (None, Some(now)) => format!("{key}: new metric, {}", show(kind, *now)),
                    (Some(was), None) => {
                        format!("{key}: no longer measured (was {})", show(kind, *was))
                    }
                    (None, None) => key.clone(),
                }
            }
            Finding::NotRun {
                scenario,
                steps,
                metrics,
            } => format!(
                "{scenario}: not run this time (the baseline has {steps} step(s) and {metrics} metric(s))"
            ),
        }
    }
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Skipped => "skipped",
    }
}

fn show(kind: MetricKind, value: f64) -> String {
    match kind {
        MetricKind::Duration => format!("{value:.0} ms"),
        MetricKind::Memory | MetricKind::ClosureSize => {
            format!("{:.1} MiB", value / (1024.0 * 1024.0))
        }
        MetricKind::Exposure | MetricKind::Other => format!("{value}"),
    }
}

fn change(kind: MetricKind, was: f64, now: f64) -> String {
    let delta = now - was;
    let relative = if was != 0.0 {
        format!(", {:+.0}%", delta / was * 100.0)
    } else {
        String::new()
    };
    match kind {
        MetricKind::Exposure => format!("{delta:+.1}"),
        _ => format!("{}{relative}", show_delta(kind, delta)),
    }
}

fn show_delta(kind: MetricKind, delta: f64) -> String {
    let sign = if delta < 0.0 { "-" } else { "+" };
    format!("{sign}{}", show(kind, delta.abs()))
}
