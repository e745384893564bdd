//! A fleet run from start to end: the selected hosts checked against the scenarios before
//! anything runs (a base URL for http steps, inventory vars some scenario declares), then run
//! side by side with live progress, then the table, the reports and the exit code.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context as _};

use super::host_run::Plan;
use super::inventory::Host;
use super::pool::{run_all, DEFAULT_PARALLEL_LIMIT};
use super::progress::{Progress, Stream};
use super::render;
use crate::execution::runner::new_run_id;
use crate::report::fleet::FleetReport;
use crate::report::output::{write_atomic, Format};
use crate::scenario::Scenario;

/// What `run --inventory` asks for, once parsed.
pub struct FleetRun<'a> {
    /// Where the hosts came from, for the report and messages.
    pub inventory: String,
    pub hosts: Vec<Host>,
    pub scenarios: &'a [Scenario],
    pub overrides: &'a [(String, String)],
    /// Every variable some scenario declares, of this run or of the scenario directory: an
    /// inventory serves many runs, so a var for another scenario is not a mistake.
    pub known_vars: std::collections::BTreeSet<String>,
    pub parallel: Option<usize>,
    pub fail_fast: bool,
    pub format: Format,
    pub report: Option<PathBuf>,
    pub junit: Option<PathBuf>,
}

/// Problems that would make a host's run meaningless, found before any host runs.
fn check_hosts(run: &FleetRun) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if let Some(scenario) = run.scenarios.iter().find(|s| s.has_http_steps()) {
        for host in run.hosts.iter().filter(|host| host.base_url.is_none()) {
            problems.push(format!(
                "{}: host `{}` has no base_url, but scenario `{}` has http steps; set base_url for it or in [defaults]",
                run.inventory, host.name, scenario.name
            ));
        }
    }
    for host in &run.hosts {
        for var in &host.vars {
            if !run.known_vars.contains(&var.name) {
                problems.push(format!(
                    "{}: vars `{}` (host `{}`): no scenario declares it in [vars] (neither of this run nor in the scenario directory); fix the name or remove it",
                    var.location, var.name, host.name
                ));
            }
        }
    }
    // A var of [defaults] is every host's: one line for it, not one per host.
    let mut seen = std::collections::BTreeSet::new();
    problems.retain(|problem| {
        seen.insert(
            problem
                .split(" (host `")
                .next()
                .unwrap_or(problem)
                .to_string(),
        )
    });
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("\n"))
    }
}

/// Runs the fleet and returns the process's exit code.
pub fn run(run: &FleetRun) -> anyhow::Result<u8> {
    if run.hosts.is_empty() {
        bail!("{}: no host selected", run.inventory);
    }
    check_hosts(run)?;
    let parallel = match run.parallel {
        Some(0) => bail!("--parallel 0: give at least 1"),
        Some(parallel) => parallel,
        None => run.hosts.len().min(DEFAULT_PARALLEL_LIMIT),
    };
    let stream = match run.format {
        Format::Human => Stream::Stdout,
        Format::Json => Stream::Stderr,
    };
    let started = std::time::Instant::now();
    let stop = AtomicBool::new(false);
    let plan = Plan {
        run_id: new_run_id(),
        scenarios: run.scenarios,
        overrides: run.overrides,
        stop: &stop,
        fail_fast: run.fail_fast,
    };
    let names: Vec<(String, String)> = run
        .hosts
        .iter()
        .map(|host| (host.name.clone(), host.target.to_string()))
        .collect();
    let mut progress = Progress::new(stream, names);
    let reports = run_all(
        &run.hosts,
        &plan,
        parallel,
        run.fail_fast,
        &mut |update| match update {
            Some((index, event)) => progress.observe(index, event),
            None => progress.tick(),
        },
    );
    progress.finish();
    let duration_ms = started.elapsed().as_millis() as u64;
    let report = FleetReport::new(
        plan.run_id.clone(),
        run.inventory.clone(),
        duration_ms,
        reports,
    );
    let json = serde_json::to_string_pretty(&report).context("cannot serialize the report")?;
    // The results reach the screen before any file is written, so a report path that cannot
    // be written loses nothing of a long run.
    let table = render::table(&report);
    match run.format {
        Format::Human => println!("\n{table}"),
        Format::Json => eprintln!("\n{table}"),
    }
    let mut unwritten = Vec::new();
    if let Some(path) = &run.report {
        if let Err(error) = write_atomic(path, json.as_bytes()) {
            unwritten.push(format!(
                "cannot write the report {}: {error}",
                path.display()
            ));
        }
    }
    if let Some(path) = &run.junit {
        if let Err(error) = write_atomic(path, render::junit(&report).as_bytes()) {
            unwritten.push(format!(
                "cannot write the JUnit file {}: {error}",
                path.display()
            ));
        }
    }
    match run.format {
        Format::Human => println!("{}", report.summary.line()),
        Format::Json => {
            println!("{json}");
            eprintln!("{}", report.summary.line());
        }
    }
    if !unwritten.is_empty() {
        bail!("{}", unwritten.join("\n"));
    }
    Ok(report.exit_code())
}
