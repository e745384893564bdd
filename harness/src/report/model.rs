//! The results of a run, as one serializable model that every output format is made from.
//! The JSON form is a documented, stable schema (docs/report-schema.md): add fields, never
//! rename or remove them without raising `schema_version`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// 2 added `kind` (`run` here, `fleet` for a fleet run's report); version 1 reports, which
/// lack it, are single runs and still read.
pub const SCHEMA_VERSION: u32 = 2;

fn run_kind() -> String {
    "run".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

/// What was done and what came back, kept for failed steps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detail {
    /// The command run or the request sent, as a person would write it.
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// A bounded excerpt of the output or response body.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub output: String,
    /// For unit steps: the unit's recent journal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    pub name: String,
    pub action: String,
    pub status: Status,
    pub duration_ms: u64,
    /// Why it failed or was skipped; absent for passed steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Detail>,
    /// Measurements of a passed step: its duration under the step's `metric` name, and
    /// captures marked `metric = true`. What the nixpkgs-bump gate compares.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub metrics: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub file: String,
    pub target: String,
    pub status: Status,
    pub duration_ms: u64,
    pub steps: Vec<StepReport>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Summary {
    pub fn line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// `run`: one target's scenarios.
    #[serde(default = "run_kind")]
    pub kind: String,
    pub harness_version: String,
    pub run_id: String,
    pub target: String,
    pub scenarios: Vec<ScenarioReport>,
    pub summary: Summary,
}

impl Report {
    pub fn new(run_id: String, target: String, scenarios: Vec<ScenarioReport>) -> Self {
        let mut summary = Summary::default();
        for step in scenarios.iter().flat_map(|scenario| &scenario.steps) {
            match step.status {
                Status::Passed => summary.passed += 1,
                Status::Failed => summary.failed += 1,
                Status::Skipped => summary.skipped += 1,
            }
        }
        Self {
            schema_version: SCHEMA_VERSION,
            kind: run_kind(),
            harness_version: env!("CARGO_PKG_VERSION").to_string(),
            run_id,
            target,
            scenarios,
            summary,
        }
    }

    pub fn failed(&self) -> bool {
        self.summary.failed > 0
    }
}
