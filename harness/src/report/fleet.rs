//! The report of a fleet run: one entry per host (its name, target and the same per-scenario
//! reports as a single run) and the fleet's summary. Its JSON form is documented in
//! docs/report-schema.md (`"kind": "fleet"`).

use serde::{Deserialize, Serialize};

use super::{ScenarioReport, Status, Summary, SCHEMA_VERSION};
use crate::exit::{EXIT_FAILED, EXIT_USAGE};

/// How a host's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    /// Every scenario ran and no step failed.
    Passed,
    /// A step failed.
    Failed,
    /// The host could not be reached (connection refused, timed out, refused the key...).
    Unreachable,
    /// Not started, because `--fail-fast` stopped the run after another host failed.
    NotRun,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    pub name: String,
    /// The `{{run_id}}` this host's scenarios saw (the fleet's, with the host's place); absent
    /// when it ran nothing.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub run_id: Option<String>,
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub base_url: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub tags: Vec<String>,
    pub status: HostStatus,
    /// Why the host is unreachable or was not run, or why scenarios were left out.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    pub duration_ms: u64,
    pub scenarios: Vec<ScenarioReport>,
    /// The scenarios this host did not run (unreachable, not run, or stopped by --fail-fast).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub not_run: Vec<String>,
    pub summary: Summary,
}

impl HostReport {
    pub fn step_summary(scenarios: &[ScenarioReport]) -> Summary {
        let mut summary = Summary::default();
        for step in scenarios.iter().flat_map(|scenario| &scenario.steps) {
            match step.status {
                Status::Passed => summary.passed += 1,
                Status::Failed => summary.failed += 1,
                Status::Skipped => summary.skipped += 1,
            }
        }
        summary
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetSummary {
    pub hosts: usize,
    pub hosts_passed: usize,
    pub hosts_failed: usize,
    pub hosts_unreachable: usize,
    pub hosts_not_run: usize,
    /// Steps of every host added up.
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl FleetSummary {
    pub fn line(&self) -> String {
        format!(
            "{} host(s): {} passed, {} failed, {} unreachable, {} not run; steps: {} passed, {} failed, {} skipped",
            self.hosts,
            self.hosts_passed,
            self.hosts_failed,
            self.hosts_unreachable,
            self.hosts_not_run,
            self.passed,
            self.failed,
            self.skipped
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetReport {
    pub schema_version: u32,
    /// Always `fleet`; a single run's report says `run`.
    pub kind: String,
    pub harness_version: String,
    pub run_id: String,
    /// The inventory file, or the flake the hosts came from.
    pub inventory: String,
    /// Wall time of the whole run, hosts side by side (a sum of the hosts' would overstate it).
    #[serde(default)]
    pub duration_ms: u64,
    pub hosts: Vec<HostReport>,
    pub summary: FleetSummary,
}

impl FleetReport {
    pub fn new(
        run_id: String,
        inventory: String,
        duration_ms: u64,
        hosts: Vec<HostReport>,
    ) -> Self {
        let mut summary = FleetSummary {
            hosts: hosts.len(),
            ..FleetSummary::default()
        };
        for host in &hosts {
            match host.status {
                HostStatus::Passed => summary.hosts_passed += 1,
                HostStatus::Failed => summary.hosts_failed += 1,
                HostStatus::Unreachable => summary.hosts_unreachable += 1,
                HostStatus::NotRun => summary.hosts_not_run += 1,
            }
            summary.passed += host.summary.passed;
            summary.failed += host.summary.failed;
            summary.skipped += host.summary.skipped;
        }
        Self {
            schema_version: SCHEMA_VERSION,
            kind: "fleet".into(),
            harness_version: env!("CARGO_PKG_VERSION").to_string(),
            run_id,
            inventory,
            duration_ms,
            hosts,
            summary,
        }
    }

    /// The exit code, by precedence: 2 when some host could not be reached (its state is
    /// unknown, which no passed host elsewhere makes up for), else 1 when a step failed on some
    /// host, else 0. Hosts left out by --fail-fast follow from a failure already counted.
    pub fn exit_code(&self) -> u8 {
        if self.summary.hosts_unreachable > 0 {
            EXIT_USAGE
        } else if self.summary.hosts_failed > 0 {
            EXIT_FAILED
        } else {
            0
        }
    }
}
