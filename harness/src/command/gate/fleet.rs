//! The gate on fleet reports. Each host is compared with the baseline on its own, never
//! aggregated: the baseline is one deployment's results, a host is one deployment, and a
//! regression on one host must not be averaged away by the others (nor a duration metric by
//! a faster host). A host that ran nothing (unreachable, or left out by --fail-fast) is a
//! regression: the gate cannot say the new nixpkgs works there.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;

use crate::exit::EXIT_FAILED;
use crate::nix::baseline::Baseline;
use crate::nix::comparison::compare;
use crate::nix::thresholds::Thresholds;
use crate::report::files::ReportFile;
use crate::report::fleet::{HostReport, HostStatus};
use crate::report::Report;

/// One host's results across the fleet reports of the directory.
pub struct HostResults {
    pub name: String,
    pub target: String,
    /// (report file, this host's part of it as a single run's report).
    pub reports: Vec<(String, Report)>,
    /// Why the host ran nothing, in some report.
    pub missing: Vec<String>,
}

/// What the reports of a directory hold, as the gate compares them.
pub enum Selected {
    /// Single runs' reports, or one host's part of fleet reports: compared as one deployment.
    Runs(Vec<(String, Report)>),
    /// Several hosts: each compared on its own.
    Hosts(Vec<HostResults>),
}

pub fn names(hosts: &[HostResults]) -> String {
    hosts
        .iter()
        .map(|host| host.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn part(file: &str, run_id: &str, host: &HostReport, results: &mut HostResults) {
    if host.scenarios.is_empty() && host.status != HostStatus::Passed {
        let reason = host.reason.clone().unwrap_or_default();
        let status = match host.status {
            HostStatus::Unreachable => "unreachable",
            HostStatus::Failed => "failed before running anything",
            _ => "not run",
        };
        results
            .missing
            .push(format!("{status} in {file}: {reason}"));
        return;
    }
    // Scenarios a host left out (--fail-fast) are not verified there either.
    for scenario in &host.not_run {
        let reason = host.reason.clone().unwrap_or_default();
        results.missing.push(format!(
            "did not run scenario `{scenario}` in {file}: {reason}"
        ));
    }
    let run_id = host.run_id.clone().unwrap_or_else(|| run_id.to_string());
    let report = Report::new(run_id, host.target.clone(), host.scenarios.clone());
    results.reports.push((file.to_string(), report));
}

/// Sorts the reports of a directory: single runs as before; fleet reports by host, narrowed
/// to `--host` when given (and to the only host when there is one).
pub fn select(
    files: Vec<(String, ReportFile)>,
    host: Option<&str>,
    dir: &Path,
) -> anyhow::Result<Selected> {
    let (mut runs, mut fleets) = (Vec::new(), Vec::new());
    for (file, report) in files {
        match report {
            ReportFile::Run(report) => runs.push((file, report)),
            ReportFile::Fleet(report) => fleets.push((file, report)),
        }
    }
    if fleets.is_empty() {
        if let Some(host) = host {
            bail!(
                "--host {host}: the reports in {} are single runs, not fleet reports; drop --host",
                dir.display()
            );
        }
        return Ok(Selected::Runs(runs));
    }
    if !runs.is_empty() {
        let singles: Vec<&str> = runs.iter().map(|(file, _)| file.as_str()).collect();
        bail!(
            "--from-reports {}: holds fleet reports and single runs' reports ({}); compare them from separate directories",
            dir.display(),
            singles.join(", ")
        );
    }
    let mut hosts: Vec<HostResults> = Vec::new();
    for (file, fleet) in &fleets {
        for host in &fleet.hosts {
            let index = match hosts.iter().position(|known| known.name == host.name) {
                Some(index) => index,
                None => {
                    hosts.push(HostResults {
                        name: host.name.clone(),
                        target: host.target.clone(),
                        reports: Vec::new(),
                        missing: Vec::new(),
                    });
                    hosts.len() - 1
                }
            };
            part(file, &fleet.run_id, host, &mut hosts[index]);
        }
    }
    if let Some(wanted) = host {
        let Some(index) = hosts.iter().position(|known| known.name == wanted) else {
            bail!(
                "--host {wanted}: no such host in the fleet reports in {}; hosts: {}",
                dir.display(),
                names(&hosts)
            );
        };
        hosts = vec![hosts.swap_remove(index)];
    }
    match <[HostResults; 1]>::try_from(hosts) {
        Ok([only]) if only.missing.is_empty() => Ok(Selected::Runs(only.reports)),
        Ok([only]) => Ok(Selected::Hosts(vec![only])),
        Err(hosts) => Ok(Selected::Hosts(hosts)),
    }
}

/// Compares every host with the baseline and prints one section per host; exit 1 when any
/// host regressed or ran nothing.
pub fn compare_hosts(
    hosts: &[HostResults],
    baseline: Option<&Baseline>,
    baseline_path: Option<&Path>,
    thresholds: &Thresholds,
) -> anyhow::Result<ExitCode> {
    match (baseline_path, baseline) {
        (Some(path), Some(baseline)) => println!(
            "gate: {} host(s), each compared with {} ({})",
            hosts.len(),
            path.display(),
            baseline.source
        ),
        _ => println!(
            "gate: {} host(s) (no --baseline: only failed steps count)",
            hosts.len()
        ),
    }
    let mut regressions = 0;
    let mut regressed_hosts = Vec::new();
    for host in hosts {
        println!("\nhost {} ({}):", host.name, host.target);
        let mut host_regressions = host.missing.len();
        for missing in &host.missing {
            println!("  regression: the host {missing}");
        }
        if !host.reports.is_empty() {
            let source = format!("host {}", host.name);
            let current = Baseline::from_reports(&source, &host.reports, None)
                .map_err(|error| anyhow::anyhow!("host {}: {error}", host.name))?;
            let comparison = compare(baseline, &current, thresholds);
            for line in comparison.render(thresholds).lines() {
                println!("  {line}");
            }
            host_regressions += comparison.regressions();
        }
        if host_regressions > 0 {
            regressed_hosts.push(host.name.as_str());
        }
        regressions += host_regressions;
    }
    println!(
        "\ngate: {regressions} regression(s) on {} of {} host(s){}",
        regressed_hosts.len(),
        hosts.len(),
        if regressed_hosts.is_empty() {
            String::new()
        } else {
            format!(": {}", regressed_hosts.join(", "))
        }
    );
    Ok(if regressions > 0 {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
