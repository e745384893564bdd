//! A container booted by the systemd container testbed (`ci/container/bitpoll-container`),
//! shut down on drop whatever the test did, and why a host cannot boot one.

// Every test binary includes this file and each uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::Failed;

pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn container_tool() -> PathBuf {
    repository().join("ci/container/bitpoll-container")
}

/// Why this host cannot boot a container, or None when it can.
pub fn host_skip_reason() -> Option<String> {
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

pub struct Container {
    pub state: tempfile::TempDir,
    /// Every KEY=VALUE line `bitpoll-container up` printed.
    values: Vec<(String, String)>,
}

impl Container {
    /// `bitpoll-container up` with these extra arguments, in a state directory of its own.
    pub fn up(arguments: &[String]) -> Result<Self, Failed> {
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
        // Made before the status is checked, so that Drop stops a half-booted container.
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

    pub fn value(&self, key: &str) -> Result<&str, Failed> {
        self.values
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| format!("bitpoll-container up printed no {key}").into())
    }

    /// A bash script's command with only a minimal environment, that first loads what
    /// `bitpoll-container env --export` prints for this container ($TOOL and $STATE given).
    pub fn shell_with_printed_environment(&self, then: &str) -> Command {
        let mut command = Command::new("bash");
        command
            .args([
                "-c",
                &format!(r#"set -e; eval "$("$TOOL" env --export --state-dir "$STATE")"; {then}"#),
            ])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.state.path())
            .env("TOOL", container_tool())
            .env("STATE", self.state.path().join("container"));
        command
    }

    /// `bitpoll-harness run` against this container over SSH.
    pub fn harness_run(&self) -> Result<Command, Failed> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bitpoll-harness"));
        command
            .current_dir(repository())
            .arg("run")
            .args(["--target", self.value("SSH_TARGET")?])
            .args(["--identity", self.value("SSH_IDENTITY")?])
            .args(["--known-hosts-file", self.value("SSH_KNOWN_HOSTS")?]);
        Ok(command)
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
