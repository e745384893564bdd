//! A fleet report for people (a table of hosts by scenarios, then every failure in full,
//! grouped by host) and for CI systems (JUnit: one test suite per `host/scenario`).

use std::fmt::Write as _;
use std::time::Duration;

use crate::report::fleet::{FleetReport, HostReport, HostStatus};
use crate::report::junit::{escape, seconds, testsuite};
use crate::report::{human, Status};
use crate::scenario::duration::format_duration;

/// The table of hosts by scenarios and the failures in full, grouped by host.
pub fn table(report: &FleetReport) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "HOST".into(),
        "SCENARIO".into(),
        "PASSED".into(),
        "FAILED".into(),
        "SKIPPED".into(),
        "DURATION".into(),
    ]];
    let mut notes = Vec::new();
    for host in &report.hosts {
        for scenario in &host.scenarios {
            let count = |status| scenario.steps.iter().filter(|s| s.status == status).count();
            rows.push([
                host.name.clone(),
                scenario.scenario.clone(),
                count(Status::Passed).to_string(),
                count(Status::Failed).to_string(),
                count(Status::Skipped).to_string(),
                format_duration(Duration::from_millis(scenario.duration_ms)),
            ]);
        }
        if !host.not_run.is_empty() {
            let label = match host.status {
                HostStatus::Unreachable => "UNREACHABLE",
                _ if ran_nothing_by_error(host) => "ERROR",
                _ => "not run",
            };
            rows.push([
                host.name.clone(),
                host.not_run.join(", "),
                "-".into(),
                "-".into(),
                "-".into(),
                label.into(),
            ]);
            if let Some(reason) = &host.reason {
                notes.push(format!("{}: {label}: {reason}", host.name));
            }
        }
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        let _ = writeln!(text, "{}", line.join("  ").trim_end());
    }
    for note in notes {
        let _ = writeln!(text, "{note}");
    }
    for host in &report.hosts {
        let failed: Vec<_> = host
            .scenarios
            .iter()
            .flat_map(|scenario| scenario.steps.iter().map(move |step| (scenario, step)))
            .filter(|(_, step)| step.status == Status::Failed)
            .collect();
        if failed.is_empty() {
            continue;
        }
        let _ = writeln!(text, "\nfailures on {} ({}):", host.name, host.target);
        for (scenario, step) in failed {
            let _ = writeln!(text, "  scenario {}:", scenario.scenario);
            let _ = writeln!(text, "{}", human::step_lines(step));
        }
    }
    text
}

/// A host that could not run its scenarios because something went wrong (unreachable, or the
/// harness could not start its run): an error, unlike scenarios left out by --fail-fast.
fn ran_nothing_by_error(host: &HostReport) -> bool {
    match host.status {
        HostStatus::Unreachable => true,
        HostStatus::Failed => host.scenarios.is_empty(),
        HostStatus::Passed | HostStatus::NotRun => false,
    }
}

/// JUnit XML: one test suite per host and scenario, named `host/scenario`; a host that ran
/// nothing has one suite per scenario it should have run, whose single test case is an
/// `error` (unreachable) or `skipped` (not run) with the reason.
pub fn junit(report: &FleetReport) -> String {
    let summary = &report.summary;
    let unrun: usize = report.hosts.iter().map(|host| host.not_run.len()).sum();
    // A scenario an unreachable host could not run is an error; one left out is skipped.
    let errors: usize = report
        .hosts
        .iter()
        .filter(|host| ran_nothing_by_error(host))
        .map(|host| host.not_run.len())
        .sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"bitpoll-harness fleet\" tests=\"{}\" failures=\"{}\" errors=\"{errors}\" skipped=\"{}\" time=\"{}\">",
        summary.passed + summary.failed + summary.skipped + unrun,
        summary.failed,
        summary.skipped + unrun - errors,
        seconds(report.duration_ms)
    );
    for host in &report.hosts {
        for scenario in &host.scenarios {
            testsuite(
                &mut xml,
                &format!("{}/{}", host.name, scenario.scenario),
                scenario,
            );
        }
        let reason = escape(host.reason.as_deref().unwrap_or(""));
        for scenario in &host.not_run {
            let name = escape(&format!("{}/{scenario}", host.name));
            let (errors, skipped, element) = if ran_nothing_by_error(host) {
                (1, 0, format!("<error message=\"{reason}\"/>"))
            } else {
                (0, 1, format!("<skipped message=\"{reason}\"/>"))
            };
            let _ = writeln!(
                xml,
                "  <testsuite name=\"{name}\" tests=\"1\" failures=\"0\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"0.000\">"
            );
            let _ = writeln!(
                xml,
                "    <properties><property name=\"target\" value=\"{}\"/></properties>",
                escape(&host.target)
            );
            let _ = writeln!(
                xml,
                "    <testcase classname=\"{name}\" name=\"the host runs the scenario\" time=\"0.000\">\n      {element}\n    </testcase>\n  </testsuite>"
            );
        }
    }
    xml.push_str("</testsuites>\n");
    xml
}
