//! Scenario VM tests built by Nix: finding a scenario's check in a flake, building its nixosTest
//! (`vm-NAME.run`, which succeeds whenever the harness ran), and reading what the harness in the
//! VM left in the output: `harness-status` and `report.json` (docs/vm-tests.md). The `vm`,
//! `validate` and `gate` commands all go through here.

use std::path::Path;
use std::process::ExitCode;

use super::flake::{self, FlakeRef};
use crate::execution::runner::new_run_id;
use crate::exit::{EXIT_FAILED, EXIT_USAGE};
use crate::nix::{Nix, NixError};
use crate::report::output::{self, Format};
use crate::report::{human, Report, ScenarioReport, Status};

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Nix(#[from] NixError),
    #[error(transparent)]
    Flake(#[from] flake::FlakeError),
    #[error("flake {flake} has no check {check} for {system} (scenario `{scenario}`); its VM checks are: {available}")]
    UnknownScenario {
        scenario: String,
        check: String,
        flake: String,
        system: String,
        available: String,
    },
    #[error("`nix eval` listed the checks of {flake} as something other than a list of names")]
    CheckList { flake: String },
    #[error("{path}: {problem}")]
    Output { path: String, problem: String },
    #[error("bitpoll-harness could not start the run of `{scenario}` in the VM (exit status 2) and wrote no report; its one-line error is in the build log above (outputs: {output})")]
    NotStarted { scenario: String, output: String },
}

/// One VM test to build: the scenario it runs and the full `nix build` arguments of its `.run`.
#[derive(Debug, Clone)]
pub struct TestBuild {
    pub scenario: String,
    pub args: Vec<String>,
}

/// What a series of VM tests produced.
#[derive(Debug, Default)]
pub struct SuiteResult {
    pub scenarios: Vec<ScenarioReport>,
    /// Runs that produced no verdict: a failed build, a harness that could not start.
    pub errors: Vec<String>,
}

impl SuiteResult {
    pub fn failed(&self) -> bool {
        self.scenarios
            .iter()
            .any(|scenario| scenario.status == Status::Failed)
    }

    /// 2 when a run produced no verdict, 1 when a step failed, 0 otherwise (as `run`).
    pub fn exit_code(&self) -> u8 {
        if !self.errors.is_empty() {
            EXIT_USAGE
        } else if self.failed() {
            EXIT_FAILED
        } else {
            0
        }
    }
}

/// `nix build -L --no-link --print-out-paths [EXTRA...] INSTALLABLE`.
pub fn build_args(extra: &[String], installable: &str) -> Vec<String> {
    let mut args: Vec<String> = ["build", "-L", "--no-link", "--print-out-paths"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().cloned());
    args.push(installable.to_string());
    args
}

/// The names of `checks.SYSTEM` of the flake (`extra`: such as `--override-input`).
pub fn flake_checks(
    nix: &Nix,
    flake: &FlakeRef,
    system: &str,
    extra: &[String],
) -> Result<Vec<String>, VmError> {
    let mut args = vec![flake.installable(&format!("checks.{system}"))];
    args.extend(extra.iter().cloned());
    args.extend(["--apply".to_string(), "builtins.attrNames".to_string()]);
    let value = nix.eval_json(&args)?;
    serde_json::from_value(value).map_err(|_| VmError::CheckList {
        flake: flake.given.clone(),
    })
}

/// Refuses a scenario whose check the flake does not have, naming the ones it has.
pub fn ensure_checks(
    checks: &[String],
    scenarios: &[String],
    flake: &FlakeRef,
    system: &str,
) -> Result<(), VmError> {
    for scenario in scenarios {
        let check = flake::check_name(scenario)?;
        if !checks.contains(&check) {
            let vm: Vec<&str> = checks
                .iter()
                .map(String::as_str)
                .filter(|name| name.starts_with("vm-"))
                .collect();
            return Err(VmError::UnknownScenario {
                scenario: scenario.clone(),
                check,
                flake: flake.given.clone(),
                system: system.to_string(),
                available: if vm.is_empty() {
                    "none".into()
                } else {
                    vm.join(", ")
                },
            });
        }
    }
    Ok(())
}

/// The scenarios of the flake's VM checks (`vm-NAME` without the prefix), in order.
pub fn scenarios_of(checks: &[String]) -> Vec<String> {
    checks
        .iter()
        .filter_map(|name| name.strip_prefix("vm-"))
        .map(str::to_string)
        .collect()
}

/// What the harness in the VM left in the test's output: its exit status and its report.
pub fn read_run_output(output: &Path) -> Result<(i32, Option<Report>), VmError> {
    let problem = |path: &Path, problem: String| VmError::Output {
        path: path.display().to_string(),
        problem,
    };
    let status_file = output.join("harness-status");
    let status = std::fs::read_to_string(&status_file).map_err(|error| {
        problem(
            &status_file,
            format!("cannot read it ({error}); is this the output of a vm-NAME.run test?"),
        )
    })?;
    let status: i32 = status.trim().parse().map_err(|_| {
        problem(
            &status_file,
            format!("`{}` is not an exit status", status.trim()),
        )
    })?;
    let report_file = output.join("report.json");
    let report = match std::fs::read_to_string(&report_file) {
        Ok(text) => Some(
            serde_json::from_str::<Report>(&text)
                .map_err(|error| problem(&report_file, format!("not a harness report: {error}")))?,
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(problem(&report_file, format!("cannot read it: {error}"))),
    };
    Ok((status, report))
}

/// Builds each test in turn and prints its per-step report as `run` does. Stops after the
/// first scenario without a pass unless `keep_going`.
pub fn run_suite(nix: &Nix, builds: &[TestBuild], keep_going: bool, format: Format) -> SuiteResult {
    let mut result = SuiteResult::default();
    let say = |text: &str| output::progress(format, text);
    for build in builds {
        eprintln!("building the VM test of `{}` ...", build.scenario);
        match run_one(nix, build) {
            Ok(scenarios) => {
                for scenario in scenarios {
                    say(&human::scenario_header(
                        &scenario.scenario,
                        &scenario.file,
                        &scenario.target,
                    ));
                    for step in &scenario.steps {
                        say(&human::step_lines(step));
                    }
                    say(&human::scenario_footer(&scenario));
                    result.scenarios.push(scenario);
                }
            }
            Err(error) => {
                eprintln!("error: {error}");
                result.errors.push(error.to_string());
            }
        }
        if !keep_going && result.exit_code() != 0 {
            break;
        }
    }
    result
}

fn run_one(nix: &Nix, build: &TestBuild) -> Result<Vec<ScenarioReport>, VmError> {
    let paths = nix.build(&build.args)?;
    let output = &paths[0];
    match read_run_output(output)? {
        (_, Some(report)) => Ok(report.scenarios),
        (2, None) => Err(VmError::NotStarted {
            scenario: build.scenario.clone(),
            output: output.display().to_string(),
        }),
        (status, None) => Err(VmError::Output {
            path: output.join("report.json").display().to_string(),
            problem: format!("missing, although the harness exited with {status}"),
        }),
    }
}

/// One report of every scenario run, for --format json, --report and --junit.
pub fn merged_report(scenarios: Vec<ScenarioReport>) -> Report {
    let mut targets: Vec<&str> = scenarios.iter().map(|s| s.target.as_str()).collect();
    targets.dedup();
    let target = match targets.as_slice() {
        [one] => one.to_string(),
        [] => "none".to_string(),
        _ => "several (see each scenario)".to_string(),
    };
    Report::new(new_run_id(), target, scenarios)
}

/// The outputs `run` has: the summary or the JSON report on stdout, and the files asked for.
pub fn emit(
    result: SuiteResult,
    format: Format,
    report_path: Option<&Path>,
    junit_path: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let code = result.exit_code();
    let report = merged_report(result.scenarios);
    output::emit(&report, format, report_path, junit_path)?;
    Ok(ExitCode::from(code))
}
