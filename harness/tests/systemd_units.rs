//! `unit` and `wait_for_unit` steps against a real systemd, over the ssh target: a bare Debian
//! container booted by the systemd container testbed (`ci/container/bitpoll-container`). A
//! failed unit's step shows the unit's journal, and waiting for a unit that failed stops at once.

#[path = "support/container.rs"]
mod container;

use std::process::Output;
use std::time::{Duration, Instant};

use container::{host_skip_reason, Container};
use libtest_mimic::{Arguments, Failed, Trial};

/// Runs a scenario text against a bare container.
fn run(container: &Container, scenario: &str) -> Result<Output, Failed> {
    let file = container.state.path().join("scenario.toml");
    std::fs::write(&file, scenario).map_err(|e| format!("write scenario: {e}"))?;
    container
        .harness_run()?
        .arg(&file)
        .output()
        .map_err(|e| format!("cannot run bitpoll-harness: {e}").into())
}

fn expect(condition: bool, what: &str, output: &Output) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(format!(
            "{what}:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into())
    }
}

fn unit_steps_pass_against_a_real_systemd() -> Result<(), Failed> {
    let container = Container::up(&[])?;
    let output = run(
        &container,
        r#"
[scenario]
name = "units"
summary = "unit expectations against a real systemd"

[[step]]
name = "sshd is active and enabled"
unit = "ssh.service"
expect = { enabled = "enabled", properties = { Type = "notify", Id = { regex = "^ssh\\.service$" } } }

[[step]]
name = "wait for sshd"
wait_for_unit = "ssh.service"

[[step]]
name = "an inactive unit is seen as inactive"
unit = "systemd-halt.service"
expect.active = "inactive"
"#,
    )?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    expect(output.status.code() == Some(0), "expected exit 0", &output)?;
    expect(
        stdout.ends_with("3 passed, 0 failed, 0 skipped\n"),
        "expected 3 passed",
        &output,
    )
}

fn a_failed_unit_fails_its_step_with_its_journal() -> Result<(), Failed> {
    let container = Container::up(&[])?;
    let started = Instant::now();
    let output = run(
        &container,
        r#"
[scenario]
name = "failing-unit"
summary = "a unit that fails, waited for"

[[step]]
name = "start a unit that fails"
run = ["systemd-run", "--unit=harness-fail-{{run_id}}", "sh", "-c", "echo harness-marker-{{run_id}}; exit 3"]

[[step]]
name = "wait for it"
wait_for_unit = "harness-fail-{{run_id}}.service"
timeout = "60s"
"#,
    )?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    expect(output.status.code() == Some(1), "expected exit 1", &output)?;
    expect(
        stdout.contains("ActiveState is failed, expected active"),
        "expected the state in the message",
        &output,
    )?;
    expect(
        stdout.contains("journal:") && stdout.contains("harness-marker-r"),
        "expected the unit's journal",
        &output,
    )?;
    expect(
        started.elapsed() < Duration::from_secs(30),
        "waiting for a failed unit must stop at once, not run out its 60s",
        &output,
    )
}

fn main() {
    let arguments = Arguments::from_args();
    let reason = host_skip_reason();
    if let Some(reason) = &reason {
        eprintln!("systemd_units: skipped: {reason}");
    }
    let trials = [
        Trial::test(
            "unit_steps_pass_against_a_real_systemd",
            unit_steps_pass_against_a_real_systemd,
        ),
        Trial::test(
            "a_failed_unit_fails_its_step_with_its_journal",
            a_failed_unit_fails_its_step_with_its_journal,
        ),
    ]
    .into_iter()
    .map(|trial| {
        trial
            .with_kind("needs systemd-nspawn")
            .with_ignored_flag(reason.is_some())
    })
    .collect();
    libtest_mimic::run(&arguments, trials).exit();
}
