//! The nixpkgs-bump gate's memory: what a run of the suite achieved (each step's status, the
//! metrics the scenarios measured, the closure size of the package). Pure: no I/O here;
//! `thresholds` says how much worse a metric may get and `comparison` compares two baselines.
//!
//! The JSON form is documented in docs/nix-commands.md; add fields freely, raise
//! `schema_version` for a rename or removal.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::{Report, Status};

pub const SCHEMA_VERSION: u32 = 1;

/// The key of the package's closure size in findings.
pub const CLOSURE_SIZE: &str = "closure_size_bytes";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BaselineError {
    #[error("scenario `{scenario}` appears in more than one report ({first} and {second}); give each scenario once")]
    DuplicateScenario {
        scenario: String,
        first: String,
        second: String,
    },
    #[error("step `{key}` appears twice in its scenario's report; step names must be unique")]
    DuplicateStep { key: String },
    #[error("metric `{key}` is measured by two steps of its scenario; name each metric once per scenario")]
    DuplicateMetric { key: String },
    #[error("baseline schema version {found} is not supported (this harness reads version {SCHEMA_VERSION}); regenerate it with --save-baseline")]
    SchemaVersion { found: u32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub schema_version: u32,
    /// Where the data came from, for people: the nixpkgs reference and system, or the reports.
    #[serde(default)]
    pub source: String,
    /// `scenario/step` to the step's status.
    pub steps: BTreeMap<String, Status>,
    /// `scenario/metric` to the value a passed step measured.
    pub metrics: BTreeMap<String, f64>,
    /// The closure size of the Bitpoll package in bytes; absent when built from reports alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closure_size_bytes: Option<u64>,
}

impl Baseline {
    /// The data of one or more reports (one scenario may appear in only one of them).
    /// `names` says where each report came from, for the error about a repeated scenario.
    pub fn from_reports(
        source: &str,
        reports: &[(String, Report)],
        closure_size_bytes: Option<u64>,
    ) -> Result<Self, BaselineError> {
        let mut steps = BTreeMap::new();
        let mut metrics = BTreeMap::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (name, report) in reports {
            for scenario in &report.scenarios {
                if let Some(first) = seen.insert(scenario.scenario.clone(), name.clone()) {
                    return Err(BaselineError::DuplicateScenario {
                        scenario: scenario.scenario.clone(),
                        first,
                        second: name.clone(),
                    });
                }
                for step in &scenario.steps {
                    let key = format!("{}/{}", scenario.scenario, step.name);
                    if steps.insert(key.clone(), step.status).is_some() {
                        return Err(BaselineError::DuplicateStep { key });
                    }
                    for (metric, value) in &step.metrics {
                        let key = format!("{}/{metric}", scenario.scenario);
                        if metrics.insert(key.clone(), *value).is_some() {
                            return Err(BaselineError::DuplicateMetric { key });
                        }
                    }
                }
            }
        }
        Ok(Self {
            schema_version: SCHEMA_VERSION,
            source: source.to_string(),
            steps,
            metrics,
            closure_size_bytes,
        })
    }

    /// A baseline read from JSON, refused when written by an incompatible schema.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let baseline: Self = serde_json::from_str(text).map_err(|error| error.to_string())?;
        if baseline.schema_version != SCHEMA_VERSION {
            return Err(BaselineError::SchemaVersion {
                found: baseline.schema_version,
            }
            .to_string());
        }
        Ok(baseline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
