//! `unit` and `wait_for_unit` steps against a real systemd, over the ssh target: a bare Debian
//! container booted by the systemd container testbed (`ci/container/bitpoll-container`). A
//! failed unit's step shows the unit's journal, and waiting for a unit that failed stops at once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn container_tool() -> PathBuf {
    repository().join("ci/container/bitpoll-container")
}

/// A booted container, shut down on drop.
struct Container {
    state: tempfile::TempDir,
    values: Vec<(String, String)>,
}

impl Container {
    fn up() -> Result<Self, Failed> {
        let state = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let output = Command::new(container_tool())
            .args(["up", "--state-dir"])
            .arg(state.path().join("container"))
            .output()
            .map_err(|e| format!("cannot run {}: {e}", container_tool().display()))?;
        let values = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        let container = Self { state, values };
        if !output.status.success() {
            return Err(format!(
                "the container did not boot: {}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Ok(container)
    }

    fn value(&self, key: &str) -> Result<&str, Failed> {
        self.values
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| format!("bitpoll-container up printed no {key}").into())
    }

    fn run(&self, scenario: &str) -> Result<Output, Failed> {
        let file = self.state.path().join("scenario.toml");
        std::fs::write(&file, scenario).map_err(|e| format!("write scenario: {e}"))?;
        Command::new(env!("CARGO_BIN_EXE_bitpoll-harness"))
            .arg("run")
            .arg(&file)
            .args(["--target", self.value("SSH_TARGET")?])
            .args(["--identity", self.value("SSH_IDENTITY")?])
            .args(["--known-hosts-file", self.value("SSH_KNOWN_HOSTS")?])
            .output()
            .map_err(|e| format!("cannot run bitpoll-harness: {e}").into())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(container_tool())
            .args(["down", "--state-dir"])
            .arg(self.state.path().join("container"))
            .output();
    }
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
    let container = Container::up()?;
    let output = container.run(
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
    let container = Container::up()?;
    let started = Instant::now();
    let output = container.run(
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

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root to boot a container with systemd-nspawn".into());
    }
    let nspawn = ["/usr/bin/systemd-nspawn", "/bin/systemd-nspawn"];
    if !nspawn.iter().any(|path| Path::new(path).exists()) {
        return Some(
            "systemd-nspawn is missing (ci/install.d/10-debian.sh installs systemd-container)"
                .into(),
        );
    }
    None
}

fn main() {
    let arguments = Arguments::from_args();
    let reason = skip_reason();
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
