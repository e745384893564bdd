//! Every shipped scenario against the systemd container testbed (`ci/container/bitpoll-container`):
//! Bitpoll installed as the package lays it out, under the module's own units and full sandbox,
//! reached over SSH. There every step can run, so every step must pass: none may be skipped.
//!
//! Each scenario gets a container of its own (they change state: backups, restores, faults).
//! Needs root, systemd-nspawn and BITPOLL_SRC (and BITPOLL_SRC_PREVIOUS for the upgrade); each
//! trial is reported as ignored, with the reason printed, where those are missing.

#[path = "support/container.rs"]
mod container;
#[path = "support/summary.rs"]
mod summary;

use std::path::Path;

use container::{host_skip_reason, repository, Container};
use libtest_mimic::{Arguments, Failed, Trial};
use summary::expect_summary;

/// How to boot the container for a scenario and what the scenario needs told.
struct Case {
    scenario: &'static str,
    /// Arguments of `bitpoll-container up`, or why this host cannot run the case.
    up_arguments: Result<Vec<String>, String>,
    vars: Vec<String>,
}

fn step_count(scenario: &str) -> Result<usize, Failed> {
    let file = repository().join(format!("scenarios/{scenario}.toml"));
    let parsed = bitpoll_harness::scenario::parse::load(&file).map_err(|d| d.to_string())?;
    Ok(parsed.steps.len())
}

fn run_case(case: &Case) -> Result<(), Failed> {
    let steps = step_count(case.scenario)?;
    let up_arguments = case.up_arguments.clone()?;
    let container = Container::up(&up_arguments)?;
    let mut command = container.harness_run()?;
    command
        .arg(case.scenario)
        .args(["--base-url", container.value("BASE_URL")?]);
    for var in &case.vars {
        command.args(["--var", var]);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run bitpoll-harness: {e}"))?;
    expect_summary(&output, &format!("{steps} passed, 0 failed, 0 skipped"))
}

/// The environment `bitpoll-container env --export` prints, loaded in a fresh shell, is all
/// `bitpoll-harness run deployment` needs, from the root directory.
fn deployment_from_the_printed_environment(up_arguments: &[String]) -> Result<(), Failed> {
    let steps = step_count("deployment")?;
    let container = Container::up(up_arguments)?;
    let output = container
        .shell_with_printed_environment(r#"cd /; exec "$HARNESS" run deployment"#)
        .env("HARNESS", env!("CARGO_BIN_EXE_bitpoll-harness"))
        .output()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    expect_summary(&output, &format!("{steps} passed, 0 failed, 0 skipped"))
}

fn checkout(variable: &str, release: &str) -> Result<String, String> {
    match std::env::var(variable) {
        Ok(path) if Path::new(&path).join("manage.py").is_file() => Ok(path),
        Ok(path) => Err(format!(
            "{variable}={path} has no manage.py; it must be a Bitpoll {release} checkout"
        )),
        Err(_) => Err(format!(
            "{variable} is not set; point it at a Bitpoll {release} checkout to run this"
        )),
    }
}

fn main() {
    let arguments = Arguments::from_args();
    let host = host_skip_reason();
    let current = checkout("BITPOLL_SRC", "0.11");
    let previous = checkout("BITPOLL_SRC_PREVIOUS", "0.10.0");
    let with_current = |extra: &[&str]| -> Result<Vec<String>, String> {
        let source = current.clone()?;
        let mut arguments = vec!["--src".to_string(), source];
        arguments.extend(extra.iter().map(|a| a.to_string()));
        Ok(arguments)
    };
    let mut cases: Vec<Case> = [
        "deployment",
        "migrations",
        "hardening",
        "backup-restore",
        "faults",
    ]
    .into_iter()
    .map(|scenario| Case {
        scenario,
        up_arguments: with_current(&[]),
        vars: Vec::new(),
    })
    .collect();
    cases.push(Case {
        scenario: "postgresql",
        up_arguments: with_current(&["--db", "postgresql"]),
        vars: Vec::new(),
    });
    // Metrics on, on a port of its own (the scenario reads them with curl on the target).
    cases.push(Case {
        scenario: "monitoring",
        up_arguments: with_current(&["--metrics"]),
        vars: Vec::new(),
    });
    // The upgrade boots 0.10.0 with 0.11.0 installed beside it; the testbed's switch command
    // plays the part of NixOS's specialisation.
    cases.push(Case {
        scenario: "upgrade",
        up_arguments: previous.clone().and_then(|old| {
            let new = current.clone()?;
            Ok(vec!["--src".into(), old, "--other-src".into(), new])
        }),
        vars: vec!["switch_command=bitpoll-testbed-switch 0.11.0".into()],
    });

    let mut trials = Vec::new();
    let printed = with_current(&[]);
    let reason = host.clone().or_else(|| printed.as_ref().err().cloned());
    trials.push(
        Trial::test("deployment_from_the_printed_environment", move || {
            deployment_from_the_printed_environment(&printed.clone()?)
        })
        .with_kind("needs BITPOLL_SRC and systemd-nspawn")
        .with_ignored_flag(reason.is_some()),
    );
    for case in cases {
        let reason = host
            .clone()
            .or_else(|| case.up_arguments.as_ref().err().cloned());
        if let Some(reason) = &reason {
            eprintln!("container_scenarios: {}: skipped: {reason}", case.scenario);
        }
        trials.push(
            Trial::test(case.scenario.replace('-', "_"), move || run_case(&case))
                .with_kind("needs BITPOLL_SRC and systemd-nspawn")
                .with_ignored_flag(reason.is_some()),
        );
    }
    libtest_mimic::run(&arguments, trials).exit();
}
