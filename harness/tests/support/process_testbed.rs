//! A real Bitpoll started by the process testbed (`ci/testbed/bitpoll-testbed`) from the
//! checkout in BITPOLL_SRC, stopped and removed on drop whatever the test did.

// Every test binary includes this file and each uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Why the checkout cannot be used, or None when it can.
pub fn skip_reason(source: Option<&Path>) -> Option<String> {
    match source {
        None => Some(
            "BITPOLL_SRC is not set; point it at a Bitpoll 0.11 checkout to run these".to_string(),
        ),
        Some(path) if !path.join("manage.py").is_file() => Some(format!(
            "BITPOLL_SRC={} has no manage.py; it must be a Bitpoll checkout",
            path.display()
        )),
        Some(_) => None,
    }
}

pub struct Testbed {
    pub dir: tempfile::TempDir,
    /// Every KEY=VALUE line `bitpoll-testbed start` printed.
    pub values: Vec<(String, String)>,
}

impl Testbed {
    /// Starts an instance on SQLite, the module's default.
    pub fn start(source: &Path) -> Result<Self, String> {
        Self::start_with_database(source, "sqlite")
    }

    /// Starts an instance on `sqlite` or `postgresql` (a private server the testbed starts).
    pub fn start_with_database(source: &Path, database: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let output = Command::new(repository().join("ci/testbed/bitpoll-testbed"))
            .args(["start", "--db", database, "--src"])
            .arg(source)
            .arg("--dir")
            .arg(dir.path().join("instance"))
            .output()
            .map_err(|e| format!("cannot run ci/testbed/bitpoll-testbed: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        // Made before the status is checked, so that Drop stops a half-started instance.
        let testbed = Self {
            dir,
            values: stdout
                .lines()
                .filter_map(|line| line.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        if !output.status.success() || testbed.value("BASE_URL").is_none() {
            return Err(format!(
                "the testbed did not start ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(testbed)
    }

    pub fn value(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// The harness with what the module gives the server's commands: the layout's bin
    /// directory first on PATH, the settings file, the state and the credentials.
    pub fn harness(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bitpoll-harness"));
        let path = format!(
            "{}:{}",
            self.value("BIN_DIR").unwrap_or_default(),
            std::env::var("PATH").unwrap_or_default()
        );
        command.current_dir(repository()).env("PATH", path);
        for (variable, key) in [
            ("BITPOLL_SETTINGS_FILE", "SETTINGS_FILE"),
            ("BITPOLL_STATE_DIR", "STATE_DIR"),
            ("CREDENTIALS_DIRECTORY", "CREDENTIALS_DIRECTORY"),
        ] {
            if let Some(value) = self.value(key) {
                command.env(variable, value);
            }
        }
        command
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = Command::new(repository().join("ci/testbed/bitpoll-testbed"))
            .args(["stop", "--remove", "--dir"])
            .arg(self.dir.path().join("instance"))
            .output();
    }
}
