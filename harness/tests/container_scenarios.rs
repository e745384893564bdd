//! Every shipped scenario against the systemd container testbed (`ci/container/bitpoll-container`):
//! Bitpoll installed as the package lays it out, under the module's own units and full sandbox,
//! reached over SSH. There every step can run, so every step must pass: none may be skipped.
//!
//! Each scenario gets a container of its own (they change state: backups, restores, faults).
//! Needs root, systemd-nspawn and BITPOLL_SRC (and BITPOLL_SRC_PREVIOUS for the upgrade); each
//! trial is reported as ignored, with the reason printed, where those are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn container_tool() -> PathBuf {
    repository().join("ci/container/bitpoll-container")
}

/// How to boot the container for a scenario and what the scenario needs told.
struct Case {
    scenario: &'static str,
    /// Arguments of `bitpoll-container up`, or why this host cannot run the case.
    up_arguments: Result<Vec<String>, String>,
    vars: Vec<String>,
}

/// A booted container, shut down on drop.
struct Container {
    state: tempfile::TempDir,
    values: Vec<(String, String)>,
}

impl Container {
    fn up(arguments: &[String]) -> Result<Self, Failed> {
        let state = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let output = Command::new(container_tool())
            .args(["up", "--state-dir"])
            .arg(state.path().join("container"))
            .args(arguments)
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
                "the container did not come up: {}",
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
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(container_tool())
            .args(["down", "--state-dir"])
            .arg(self.state.path().join("container"))
            .output();
    }
}

fn step_count(scenario: &str) -> Result<usize, Failed> {
    let file = repository().join(format!("scenarios/{scenario}.toml"));
    let parsed = bitpoll_harness::parse::load(&file).map_err(|d| d.to_string())?;
    Ok(parsed.steps.len())
}

fn run_case(case: &Case) -> Result<(), Failed> {
    let steps = step_count(case.scenario)?;
    let up_arguments = case.up_arguments.clone()?;
    let container = Container::up(&up_arguments)?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_bitpoll-harness"));
    command
        .current_dir(repository())
        .args(["run", case.scenario])
        .args(["--target", container.value("SSH_TARGET")?])
        .args(["--identity", container.value("SSH_IDENTITY")?])
        .args(["--known-hosts-file", container.value("SSH_KNOWN_HOSTS")?])
        .args(["--base-url", container.value("BASE_URL")?]);
    for var in &case.vars {
        command.args(["--var", var]);
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run bitpoll-harness: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected = format!("{steps} passed, 0 failed, 0 skipped");
    let last = stdout.lines().last().unwrap_or_default();
    if output.status.code() != Some(0) || last != expected {
        return Err(format!(
            "expected exit 0 and {expected:?}, got {} and {last:?}:\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}

fn host_reason() -> Option<String> {
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
    let host = host_reason();
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
