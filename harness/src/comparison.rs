//! Two baselines compared: regressions (a step that passed and no longer does, a metric worse
//! than its threshold) first, then improvements and steps that appeared or went away.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::baseline::{Baseline, CLOSURE_SIZE, SCHEMA_VERSION};
use crate::report::Status;
use crate::thresholds::{MetricKind, Thresholds};

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

    fn line(&self, thresholds: &Thresholds) -> String {
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

/// Everything that differs, or is worth saying, between a baseline and the current run.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub findings: Vec<(Severity, Finding)>,
    /// Metrics present in both and within their thresholds.
    pub unchanged_metrics: usize,
    /// Steps with the same status in both.
    pub unchanged_steps: usize,
    /// Whether there was a baseline; without one only failed steps are findings.
    pub has_baseline: bool,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.count(Severity::Regression)
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.findings.iter().filter(|(s, _)| *s == severity).count()
    }

    /// The diff for people: regressions first, then improvements, then the rest.
    pub fn render(&self, thresholds: &Thresholds) -> String {
        let mut text = String::new();
        let first = if self.has_baseline {
            "regressions"
        } else {
            "failed steps"
        };
        for (severity, title) in [
            (Severity::Regression, first),
            (Severity::Improvement, "improvements"),
            (Severity::Info, "other changes"),
        ] {
            let lines: Vec<String> = self
                .findings
                .iter()
                .filter(|(s, _)| *s == severity)
                .map(|(_, finding)| {
                    if self.has_baseline {
                        finding.line(thresholds)
                    } else {
                        // Without a baseline every finding is a step that failed.
                        format!("{}: failed", finding.key())
                    }
                })
                .collect();
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(text, "{title} ({}):", lines.len());
            for line in lines {
                let _ = writeln!(text, "  {line}");
            }
        }
        if self.has_baseline {
            let _ = write!(
                text,
                "{} regression(s), {} improvement(s); {} step(s) and {} metric(s) unchanged",
                self.regressions(),
                self.count(Severity::Improvement),
                self.unchanged_steps,
                self.unchanged_metrics
            );
        } else {
            let _ = write!(
                text,
                "{} failed step(s), {} other step(s) and {} metric(s) recorded; no baseline to compare them with",
                self.regressions(),
                self.unchanged_steps,
                self.unchanged_metrics
            );
        }
        text
    }
}

/// Compares the current run with a baseline. Without one, every failed step is a regression
/// (the baseline of a new suite is that everything passes).
pub fn compare(
    baseline: Option<&Baseline>,
    current: &Baseline,
    thresholds: &Thresholds,
) -> Comparison {
    let empty = Baseline {
        schema_version: SCHEMA_VERSION,
        source: String::new(),
        steps: BTreeMap::new(),
        metrics: BTreeMap::new(),
        closure_size_bytes: None,
    };
    let has_baseline = baseline.is_some();
    let baseline = baseline.unwrap_or(&empty);
    let mut findings = Vec::new();
    let mut unchanged_steps = 0;
    let mut unchanged_metrics = 0;

    // Scenarios are the part of a key before its first `/` (a scenario name has none).
    let scenario_of = |key: &str| key.split('/').next().unwrap_or(key).to_string();
    let ran: BTreeSet<String> = current
        .steps
        .keys()
        .chain(current.metrics.keys())
        .map(|key| scenario_of(key))
        .collect();
    let not_run = |key: &str| key != CLOSURE_SIZE && !ran.contains(&scenario_of(key));
    let mut skipped_scenarios: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for key in baseline.steps.keys().filter(|key| not_run(key)) {
        skipped_scenarios.entry(scenario_of(key)).or_default().0 += 1;
    }
    for key in baseline.metrics.keys().filter(|key| not_run(key)) {
        skipped_scenarios.entry(scenario_of(key)).or_default().1 += 1;
    }
    for (scenario, (steps, metrics)) in skipped_scenarios {
        findings.push((
            Severity::Info,
            Finding::NotRun {
                scenario,
                steps,
                metrics,
            },
        ));
    }

    let step_keys: BTreeSet<&String> = baseline
        .steps
        .keys()
        .filter(|key| !not_run(key))
        .chain(current.steps.keys())
        .collect();
    for key in step_keys {
        let was = baseline.steps.get(key).copied();
        let now = current.steps.get(key).copied();
        if was == now && now != Some(Status::Failed) {
            unchanged_steps += 1;
            continue;
        }
        if !has_baseline && now != Some(Status::Failed) {
            // Without a baseline only failures are worth a line.
            unchanged_steps += 1;
            continue;
        }
        let finding = Finding::Step {
            key: key.clone(),
            was,
            now,
        };
        findings.push((finding.severity(thresholds), finding));
    }

    let mut was_metrics = baseline.metrics.clone();
    let mut now_metrics = current.metrics.clone();
    was_metrics.retain(|key, _| !not_run(key));
    if let Some(size) = baseline.closure_size_bytes {
        was_metrics.insert(CLOSURE_SIZE.into(), size as f64);
    }
    if let Some(size) = current.closure_size_bytes {
        now_metrics.insert(CLOSURE_SIZE.into(), size as f64);
    }
    let metric_keys: BTreeSet<&String> = was_metrics.keys().chain(now_metrics.keys()).collect();
    for key in metric_keys {
        let finding = Finding::Metric {
            key: key.clone(),
            was: was_metrics.get(key).copied(),
            now: now_metrics.get(key).copied(),
        };
        let severity = finding.severity(thresholds);
        // Without a baseline there is nothing to compare a measurement with.
        if !has_baseline {
            unchanged_metrics += 1;
            continue;
        }
        let both = matches!(
            finding,
            Finding::Metric {
                was: Some(_),
                now: Some(_),
                ..
            }
        );
        if both && severity == Severity::Info {
            unchanged_metrics += 1;
            continue;
        }
        findings.push((severity, finding));
    }
    findings.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key().cmp(b.1.key())));
    Comparison {
        findings,
        unchanged_metrics,
        unchanged_steps,
        has_baseline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::BaselineError;
    use crate::report::Report;

    fn baseline(
        steps: &[(&str, Status)],
        metrics: &[(&str, f64)],
        closure: Option<u64>,
    ) -> Baseline {
        Baseline {
            schema_version: SCHEMA_VERSION,
            source: "test".into(),
            steps: steps.iter().map(|(k, s)| (k.to_string(), *s)).collect(),
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            closure_size_bytes: closure,
        }
    }

    fn severities(comparison: &Comparison) -> Vec<(Severity, String)> {
        comparison
            .findings
            .iter()
            .map(|(s, f)| (*s, f.key().to_string()))
            .collect()
    }

    #[test]
    fn kinds_follow_the_metric_names() {
        assert_eq!(MetricKind::of("hardening/exposure"), MetricKind::Exposure);
        assert_eq!(
            MetricKind::of("migrations/restart_ms"),
            MetricKind::Duration
        );
        assert_eq!(
            MetricKind::of("deployment/memory_rss_bytes"),
            MetricKind::Memory
        );
        assert_eq!(MetricKind::of(CLOSURE_SIZE), MetricKind::ClosureSize);
        assert_eq!(MetricKind::of("x/polls"), MetricKind::Other);
    }

    #[test]
    fn thresholds_at_their_edges() {
        let t = Thresholds::default();
        // Exposure: +0.1 absolute is allowed, more is not.
        assert!(!t.regressed(MetricKind::Exposure, 0.2, 0.3));
        assert!(t.regressed(MetricKind::Exposure, 0.2, 0.4));
        // Durations: both +50% and +500 ms must be exceeded.
        assert!(!t.regressed(MetricKind::Duration, 100.0, 400.0)); // +300%, +300 ms
        assert!(!t.regressed(MetricKind::Duration, 2000.0, 2900.0)); // +45%, +900 ms
        assert!(t.regressed(MetricKind::Duration, 1400.0, 2800.0)); // doubled
        assert!(t.regressed(MetricKind::Duration, 100.0, 600.0)); // +500%, +500 ms
                                                                  // Memory +20%, closure +10%.
        assert!(!t.regressed(MetricKind::Memory, 100.0, 120.0));
        assert!(t.regressed(MetricKind::Memory, 100.0, 121.0));
        assert!(!t.regressed(MetricKind::ClosureSize, 1000.0, 1100.0));
        assert!(t.regressed(MetricKind::ClosureSize, 1000.0, 1101.0));
        assert!(!t.regressed(MetricKind::Other, 1.0, 1000.0));
    }

    #[test]
    fn regressions_come_first_and_are_counted() {
        let was = baseline(
            &[
                ("d/a", Status::Passed),
                ("d/b", Status::Passed),
                ("d/c", Status::Failed),
                ("d/gone", Status::Passed),
                ("d/same", Status::Passed),
            ],
            &[
                ("m/restart_ms", 1400.0),
                ("h/exposure", 0.2),
                ("d/memory_rss_bytes", 1e8),
            ],
            Some(1_000_000),
        );
        let now = baseline(
            &[
                ("d/a", Status::Failed),
                ("d/b", Status::Skipped),
                ("d/c", Status::Passed),
                ("d/new", Status::Passed),
                ("d/same", Status::Passed),
            ],
            &[
                ("m/restart_ms", 1500.0),
                ("h/exposure", 0.5),
                ("d/memory_rss_bytes", 0.5e8),
            ],
            Some(1_200_000),
        );
        let comparison = compare(Some(&was), &now, &Thresholds::default());
        assert_eq!(
            severities(&comparison),
            vec![
                (Severity::Regression, "closure_size_bytes".into()),
                (Severity::Regression, "d/a".into()),
                (Severity::Regression, "d/b".into()),
                (Severity::Regression, "h/exposure".into()),
                (Severity::Improvement, "d/c".into()),
                (Severity::Improvement, "d/memory_rss_bytes".into()),
                (Severity::Info, "d/gone".into()),
                (Severity::Info, "d/new".into()),
            ]
        );
        assert_eq!(comparison.regressions(), 4);
        assert_eq!(comparison.unchanged_steps, 1);
        assert_eq!(comparison.unchanged_metrics, 1);
        let text = comparison.render(&Thresholds::default());
        assert!(text.starts_with("regressions (4):\n"), "{text}");
        assert!(text.contains("  d/a: passed -> failed\n"), "{text}");
        assert!(
            text.contains("  h/exposure: 0.2 -> 0.5 (+0.3; +0.1 at most)\n"),
            "{text}"
        );
        assert!(text.contains("  d/new: new step, passed\n"), "{text}");
        assert!(
            text.ends_with(
                "4 regression(s), 2 improvement(s); 1 step(s) and 1 metric(s) unchanged"
            ),
            "{text}"
        );
    }

    #[test]
    fn identical_runs_have_nothing_to_report() {
        let data = baseline(
            &[("d/a", Status::Passed)],
            &[("m/restart_ms", 1400.0)],
            Some(5),
        );
        let comparison = compare(Some(&data), &data, &Thresholds::default());
        assert!(comparison.findings.is_empty());
        assert_eq!(comparison.unchanged_steps, 1);
        assert_eq!(comparison.unchanged_metrics, 2);
    }

    #[test]
    fn a_scenario_that_did_not_run_is_one_line() {
        let was = baseline(
            &[
                ("d/a", Status::Passed),
                ("d/b", Status::Passed),
                ("m/x", Status::Passed),
            ],
            &[("d/memory_rss_bytes", 1.0)],
            None,
        );
        let now = baseline(&[("m/x", Status::Passed)], &[], None);
        let comparison = compare(Some(&was), &now, &Thresholds::default());
        assert_eq!(severities(&comparison), vec![(Severity::Info, "d".into())]);
        assert!(comparison
            .render(&Thresholds::default())
            .contains("  d: not run this time (the baseline has 2 step(s) and 1 metric(s))\n"));
    }

    #[test]
    fn a_known_failure_is_not_a_new_regression() {
        let data = baseline(&[("d/a", Status::Failed)], &[], None);
        let comparison = compare(Some(&data), &data, &Thresholds::default());
        assert_eq!(
            severities(&comparison),
            vec![(Severity::Info, "d/a".into())]
        );
        assert_eq!(comparison.regressions(), 0);
    }

    #[test]
    fn without_a_baseline_failed_steps_are_the_regressions() {
        let now = baseline(
            &[
                ("d/a", Status::Failed),
                ("d/b", Status::Passed),
                ("d/c", Status::Skipped),
            ],
            &[("m/restart_ms", 1.0)],
            None,
        );
        let comparison = compare(None, &now, &Thresholds::default());
        assert_eq!(
            severities(&comparison),
            vec![(Severity::Regression, "d/a".into())]
        );
    }

    #[test]
    fn reports_become_keyed_steps_and_metrics() {
        let text = r#"{"schema_version":1,"harness_version":"0.1.0","run_id":"r1","target":"local",
          "scenarios":[{"scenario":"migrations","file":"f","target":"local","status":"passed","duration_ms":5,
          "steps":[{"name":"restart","action":"run","status":"passed","duration_ms":3,"metrics":{"restart_ms":3}},
                   {"name":"after","action":"http","status":"skipped","duration_ms":0,"message":"why"}]}],
          "summary":{"passed":1,"failed":0,"skipped":1}}"#;
        let report: Report = serde_json::from_str(text).unwrap();
        let data =
            Baseline::from_reports("r", &[("a.json".into(), report.clone())], Some(7)).unwrap();
        assert_eq!(data.steps["migrations/restart"], Status::Passed);
        assert_eq!(data.steps["migrations/after"], Status::Skipped);
        assert_eq!(data.metrics["migrations/restart_ms"], 3.0);
        assert_eq!(data.closure_size_bytes, Some(7));
        let error = Baseline::from_reports(
            "r",
            &[("a.json".into(), report.clone()), ("b.json".into(), report)],
            None,
        )
        .unwrap_err();
        assert_eq!(
            error,
            BaselineError::DuplicateScenario {
                scenario: "migrations".into(),
                first: "a.json".into(),
                second: "b.json".into()
            }
        );
        let json = serde_json::to_string(&data).unwrap();
        assert_eq!(Baseline::from_json(&json).unwrap(), data);
        let future = json.replace("\"schema_version\":1", "\"schema_version\":2");
        assert!(Baseline::from_json(&future)
            .unwrap_err()
            .contains("schema version 2"));
    }
}
