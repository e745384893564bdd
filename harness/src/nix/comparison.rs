//! Two baselines compared: regressions (a step that passed and no longer does, a metric worse
//! than its threshold) first, then improvements and steps that appeared or went away.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::baseline::{Baseline, CLOSURE_SIZE, SCHEMA_VERSION};
use super::finding::{Finding, Severity};
use super::thresholds::Thresholds;
use crate::report::Status;

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
}
