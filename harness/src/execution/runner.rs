//! Runs a scenario's steps in order: templating, requirements, retries, captures, cleanup.
//!
//! After a failure the remaining steps are skipped, except `always` steps (cleanup), which still
//! run. A step that needs what the target lacks is skipped with the reason, never passed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::actions::{self, Attempt, Context};
use super::capabilities::Capabilities;
use super::render::render_step;
use crate::report::{ScenarioReport, Status, StepReport};
use crate::scenario::duration::format_duration;
use crate::scenario::template;
use crate::scenario::{Action, Retry, Scenario, Step};

/// Values the command line gives every scenario of a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub run_id: String,
    pub base_url: Option<String>,
    /// `--var NAME=VALUE`, already checked against the scenario's `[vars]`.
    pub overrides: Vec<(String, String)>,
}

/// A unique id for a run: time and process id, short enough for poll slugs.
pub fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 40);
    format!("r{:010x}", mixed & 0xff_ffff_ffff)
}

/// The variables a scenario starts with: built-ins, then `[vars]`, then `--var` overrides.
pub fn initial_vars(
    scenario: &Scenario,
    target: &str,
    options: &RunOptions,
) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    vars.insert("run_id".to_string(), options.run_id.clone());
    vars.insert("scenario".to_string(), scenario.name.clone());
    vars.insert("target".to_string(), target.to_string());
    if let Some(base_url) = &options.base_url {
        vars.insert(
            "base_url".to_string(),
            base_url.trim_end_matches('/').to_string(),
        );
    }
    let builtins = vars.clone();
    for (name, value) in &scenario.vars {
        let value = template::render(value, &builtins)
            .map_err(|error| format!("[vars] `{name}`: {error}"))?;
        vars.insert(name.clone(), value);
    }
    for (name, value) in &options.overrides {
        vars.insert(name.clone(), value.clone());
    }
    Ok(vars)
}

pub async fn run_scenario(
    scenario: &Scenario,
    context: &Context,
    capabilities: &Capabilities,
    options: &RunOptions,
    progress: &mut dyn FnMut(&StepReport),
) -> ScenarioReport {
    let started = Instant::now();
    let target = context.target.describe();
    let deadline = scenario.timeout.map(|timeout| started + timeout);
    let mut steps = Vec::new();
    let mut vars_result = initial_vars(scenario, &target, options);
    let mut failed = false;
    for step in &scenario.steps {
        let step_started = Instant::now();
        let outcome = match &mut vars_result {
            Err(message) => Outcome::failed(message.clone()),
            Ok(vars) => {
                run_step(
                    scenario,
                    step,
                    context,
                    capabilities,
                    vars,
                    failed,
                    deadline,
                )
                .await
            }
        };
        let mut report = StepReport {
            name: step.name.clone(),
            action: step.action.kind().to_string(),
            status: outcome.status,
            duration_ms: step_started.elapsed().as_millis() as u64,
            message: outcome.message,
            detail: outcome.detail,
            metrics: outcome.metrics,
        };
        if let (Some(name), Status::Passed) = (&step.metric, report.status) {
            report
                .metrics
                .insert(name.clone(), report.duration_ms as f64);
        }
        failed |= report.status == Status::Failed;
        progress(&report);
        steps.push(report);
        if vars_result.is_err() {
            vars_result = Err("not run: the scenario's variables could not be set".into());
        }
    }
    ScenarioReport {
        scenario: scenario.name.clone(),
        file: scenario.file.display().to_string(),
        target,
        status: if failed {
            Status::Failed
        } else {
            Status::Passed
        },
        duration_ms: started.elapsed().as_millis() as u64,
        steps,
    }
}

struct Outcome {
    status: Status,
    message: Option<String>,
    detail: Option<crate::report::Detail>,
    metrics: BTreeMap<String, f64>,
}

impl Outcome {
    fn failed(message: String) -> Self {
        Self {
            status: Status::Failed,
            message: Some(message),
            detail: None,
            metrics: BTreeMap::new(),
        }
    }

    fn skipped(reason: String) -> Self {
        Self {
            status: Status::Skipped,
            message: Some(reason),
            detail: None,
            metrics: BTreeMap::new(),
        }
    }
}

async fn run_step(
    scenario: &Scenario,
    step: &Step,
    context: &Context,
    capabilities: &Capabilities,
    vars: &mut BTreeMap<String, String>,
    earlier_failure: bool,
    deadline: Option<Instant>,
) -> Outcome {
    if earlier_failure && !step.always {
        return Outcome::skipped("not run: an earlier step failed".into());
    }
    let mut required = step.requires.clone();
    required.extend_from_slice(step.action.implied_requirements());
    if let Some(reason) = capabilities.missing(&required) {
        return Outcome::skipped(reason);
    }
    // Cleanup steps run whatever is left of the scenario's budget, bounded by their own timeout:
    // leaving a deployment dirty is worse than overrunning.
    let deadline = deadline.filter(|_| !step.always);
    let remaining = match deadline {
        Some(deadline) if Instant::now() >= deadline => {
            return Outcome::failed(format!(
                "not run: the scenario's timeout of {} ran out",
                format_duration(scenario.timeout.unwrap_or_default())
            ))
        }
        Some(deadline) => deadline - Instant::now(),
        None => Duration::MAX,
    };
    let rendered = match render_step(step, vars) {
        Ok(rendered) => rendered,
        Err(message) => return Outcome::failed(explain_render_error(scenario, message)),
    };
    let timeout = step.timeout.min(remaining);
    let (attempt, attempts) = match rendered.repeat {
        Some(repeat) => attempt_repeatedly(&rendered, context, timeout, repeat).await,
        None => attempt_with_retry(&rendered, context, timeout, remaining).await,
    };
    if attempt.failures.is_empty() {
        let metrics = match capture_metrics(&rendered, &attempt.captured) {
            Ok(metrics) => metrics,
            Err(message) => return Outcome::failed(message),
        };
        vars.extend(attempt.captured);
        return Outcome {
            status: Status::Passed,
            message: None,
            detail: None,
            metrics,
        };
    }
    let mut detail = attempt.detail;
    if let Action::Unit { name } | Action::WaitForUnit { name } = &rendered.action {
        detail.journal = actions::journal(context, name).await;
    }
    let mut message = attempt.failures.join("; ");
    if let Some(repeat) = rendered.repeat {
        message = format!("attempt {attempts} of {}: {message}", repeat.count);
    } else if attempts > 1 {
        message = format!("{message} (still failing after {attempts} attempts)");
    }
    Outcome {
        status: Status::Failed,
        message: Some(message),
        detail: Some(detail),
        metrics: BTreeMap::new(),
    }
}

/// The captures marked `metric = true`, as numbers.
fn capture_metrics(
    step: &Step,
    captured: &[(String, String)],
) -> Result<BTreeMap<String, f64>, String> {
    let mut metrics = BTreeMap::new();
    for capture in step.captures.iter().filter(|capture| capture.metric) {
        let value = captured
            .iter()
            .find(|(name, _)| *name == capture.name)
            .map(|(_, value)| value.as_str())
            .unwrap_or_default();
        let number = value.trim().parse::<f64>().map_err(|_| {
            format!(
                "capture `{}` is a metric but {value:?} is not a number",
                capture.name
            )
        })?;
        metrics.insert(capture.name.clone(), number);
    }
    Ok(metrics)
}

/// Repeats the attempt until it passes or the retry window closes. `wait_for_unit` retries
/// by nature, for as long as its step timeout.
async fn attempt_with_retry(
    step: &Step,
    context: &Context,
    timeout: Duration,
    remaining: Duration,
) -> (Attempt, usize) {
    let retry = step.retry.or_else(|| match step.action {
        Action::WaitForUnit { .. } => Some(Retry {
            timeout,
            interval: Duration::from_millis(500),
        }),
        _ => None,
    });
    let Some(retry) = retry else {
        return (actions::attempt(step, context, timeout).await, 1);
    };
    let window_end = Instant::now() + retry.timeout.min(remaining);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let left = window_end.saturating_duration_since(Instant::now());
        let attempt = actions::attempt(
            step,
            context,
            timeout.min(left.max(Duration::from_millis(100))),
        )
        .await;
        let window_closed = Instant::now() + retry.interval >= window_end;
        if attempt.failures.is_empty() || attempt.fatal || window_closed {
            return (attempt, attempts);
        }
        tokio::time::sleep(retry.interval).await;
    }
}

/// Runs the step `count` times; the first failing attempt ends the step. Captures come from
/// the last attempt.
async fn attempt_repeatedly(
    step: &Step,
    context: &Context,
    timeout: Duration,
    repeat: crate::scenario::Repeat,
) -> (Attempt, usize) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let attempt = actions::attempt(step, context, timeout).await;
        if !attempt.failures.is_empty() || attempts >= repeat.count as usize {
            return (attempt, attempts);
        }
        tokio::time::sleep(repeat.interval).await;
    }
}

/// A variable can be missing at run time only when the step that captures it did not run.
fn explain_render_error(scenario: &Scenario, message: String) -> String {
    let captured_by = scenario.steps.iter().find(|step| {
        step.captures
            .iter()
            .any(|capture| message.contains(&format!("`{}`", capture.name)))
    });
    match captured_by {
        Some(step) => format!(
            "{message}: step `{}` that captures it did not pass",
            step.name
        ),
        None if message.contains("`base_url`") => format!("{message}: pass --base-url"),
        None => message,
    }
}
