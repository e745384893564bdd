//! One host of a fleet run: connect (one SSH session for all its scenarios), probe what the
//! target can do, run every scenario, and say what happened as events for the progress view.
//! Whatever goes wrong here ends in this host's report and never reaches another host.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::inventory::Host;
use crate::execution::actions::Context;
use crate::execution::capabilities::Capabilities;
use crate::execution::runner::{run_scenario, RunOptions};
use crate::report::fleet::{HostReport, HostStatus};
use crate::report::{ScenarioReport, Status, StepReport};
use crate::scenario::Scenario;
use crate::target::http::HttpClient;

/// What a host's run reports while it goes, in order, tagged with the host's index.
#[derive(Debug, Clone)]
pub enum Event {
    Connecting,
    ScenarioStarted(String),
    Step(Box<StepReport>),
    ScenarioFinished(Box<ScenarioReport>),
    Finished(Box<HostReport>),
}

/// What every host of a run shares.
pub struct Plan<'a> {
    pub run_id: String,
    pub scenarios: &'a [Scenario],
    /// `--var` overrides, applied after the inventory's.
    pub overrides: &'a [(String, String)],
    /// Set when --fail-fast stops the run: scenarios not started yet are left out.
    pub stop: &'a AtomicBool,
    /// --fail-fast: a failed scenario sets `stop` at once, for every host.
    pub fail_fast: bool,
}

/// A report for a host that ran nothing: unreachable, or left out by --fail-fast.
pub fn without_run(host: &Host, plan: &Plan, status: HostStatus, reason: String) -> HostReport {
    HostReport {
        name: host.name.clone(),
        run_id: None,
        target: host.target.to_string(),
        base_url: host.base_url.clone(),
        tags: host.tags.clone(),
        status,
        reason: Some(reason),
        duration_ms: 0,
        scenarios: Vec::new(),
        not_run: plan.scenarios.iter().map(|s| s.name.clone()).collect(),
        summary: Default::default(),
    }
}

/// The run id a host's scenarios see as `{{run_id}}`: the fleet's with the host's place in
/// the inventory, because hosts may share one Bitpoll (behind a load balancer, or one
/// database) and the names scenarios derive from it (poll slugs) must not collide.
pub fn host_run_id(run_id: &str, index: usize) -> String {
    format!("{run_id}-h{}", index + 1)
}

/// Runs every scenario of the plan on the host at `index`; `send` carries its events.
pub fn run_host(index: usize, host: &Host, plan: &Plan, send: &dyn Fn(Event)) -> HostReport {
    let started = Instant::now();
    send(Event::Connecting);
    let target = match host.connect() {
        Ok(target) => target,
        Err(reason) => {
            let mut report = without_run(host, plan, HostStatus::Unreachable, reason);
            report.duration_ms = started.elapsed().as_millis() as u64;
            return report;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let reason = format!("cannot start the async runtime: {error}");
            let mut report = without_run(host, plan, HostStatus::Failed, reason);
            report.duration_ms = started.elapsed().as_millis() as u64;
            return report;
        }
    };
    let http = match HttpClient::new(host.base_url.clone()) {
        Ok(http) => http,
        Err(error) => {
            let reason = format!("cannot build the http client: {error:#}");
            let mut report = without_run(host, plan, HostStatus::Failed, reason);
            report.duration_ms = started.elapsed().as_millis() as u64;
            return report;
        }
    };
    let context = Context {
        target: Arc::clone(&target),
        http,
    };
    let capabilities = Capabilities::probe(target.as_ref());
    // The inventory's vars (defaults, then the host's), then the command line's.
    let overrides = host
        .vars
        .iter()
        .map(|var| (var.name.clone(), var.value.clone()))
        .chain(plan.overrides.iter().cloned())
        .collect();
    let options = RunOptions {
        run_id: host_run_id(&plan.run_id, index),
        base_url: host.base_url.clone(),
        overrides,
    };
    let mut scenarios = Vec::new();
    let mut not_run = Vec::new();
    for scenario in plan.scenarios {
        if plan.stop.load(Ordering::SeqCst) {
            not_run.push(scenario.name.clone());
            continue;
        }
        send(Event::ScenarioStarted(scenario.name.clone()));
        let mut progress = |step: &StepReport| send(Event::Step(Box::new(step.clone())));
        let report = runtime.block_on(run_scenario(
            scenario,
            &context,
            &capabilities,
            &options,
            &mut progress,
        ));
        if plan.fail_fast && report.status == Status::Failed {
            plan.stop.store(true, Ordering::SeqCst);
        }
        send(Event::ScenarioFinished(Box::new(report.clone())));
        scenarios.push(report);
    }
    let summary = HostReport::step_summary(&scenarios);
    let status = if summary.failed > 0 {
        HostStatus::Failed
    } else if scenarios.is_empty() && !not_run.is_empty() {
        // --fail-fast stopped the run before this host's first scenario.
        HostStatus::NotRun
    } else {
        HostStatus::Passed
    };
    let reason = (!not_run.is_empty())
        .then(|| "--fail-fast: another host failed, so the scenarios left were not run".into());
    HostReport {
        name: host.name.clone(),
        run_id: Some(options.run_id.clone()),
        target: target.describe(),
        base_url: host.base_url.clone(),
        tags: host.tags.clone(),
        status,
        reason,
        duration_ms: started.elapsed().as_millis() as u64,
        scenarios,
        not_run,
        summary,
    }
}
