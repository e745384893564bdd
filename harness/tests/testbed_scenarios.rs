//! The shipped scenarios against a real Bitpoll started by the process testbed
//! (`ci/testbed/bitpoll-testbed`), on SQLite and on PostgreSQL, with `--target local`.
//! Steps that need systemd are skipped there with their reason; the systemd container testbed
//! runs them.
//!
//! Needs a Bitpoll checkout in BITPOLL_SRC; without it every trial is reported as ignored and
//! the reason is printed.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A running testbed instance, stopped on drop whatever the test did.
struct Testbed {
    dir: tempfile::TempDir,
    base_url: String,
    /// The layout's bin directory (bitpoll-manage, bitpoll-ops), put first on PATH as the
    /// module puts them on the system's.
    bin_dir: String,
    /// What the module's wrappers give those commands: settings, state and credentials.
    environment: Vec<(String, String)>,
}

impl Testbed {
    fn start(source: &Path, database: &str) -> Result<Self, Failed> {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let output = Command::new(repository().join("ci/testbed/bitpoll-testbed"))
            .args(["start", "--db", database, "--src"])
            .arg(source)
            .arg("--dir")
            .arg(dir.path().join("instance"))
            .output()
            .map_err(|e| format!("cannot run ci/testbed/bitpoll-testbed: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        // Built before the status check so that a failed start is still stopped by Drop.
        let value = |key: &str| {
            stdout
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        let base_url = value("BASE_URL");
        let testbed = Self {
            dir,
            base_url: base_url.clone().unwrap_or_default(),
            bin_dir: value("BIN_DIR").unwrap_or_default(),
            environment: [
                ("BITPOLL_SETTINGS_FILE", "SETTINGS_FILE"),
                ("BITPOLL_STATE_DIR", "STATE_DIR"),
                ("CREDENTIALS_DIRECTORY", "CREDENTIALS_DIRECTORY"),
            ]
            .into_iter()
            .filter_map(|(variable, key)| Some((variable.to_string(), value(key)?)))
            .collect(),
        };
        if !output.status.success() || base_url.is_none() {
            return Err(format!(
                "the testbed did not start ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Ok(testbed)
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

fn run_scenario(
    source: &Path,
    database: &str,
    scenario: &str,
    summary: &str,
) -> Result<(), Failed> {
    let testbed = Testbed::start(source, database)?;
    let report = testbed.dir.path().join("report.json");
    let path = format!(
        "{}:{}",
        testbed.bin_dir,
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new(env!("CARGO_BIN_EXE_bitpoll-harness"))
        .current_dir(repository())
        .env("PATH", path)
        .envs(testbed.environment.iter().map(|(k, v)| (k, v)))
        .args([
            "run",
            scenario,
            "--target",
            "local",
            "--base-url",
            &testbed.base_url,
        ])
        .arg("--report")
        .arg(&report)
        .output()
        .map_err(|e| format!("cannot run bitpoll-harness: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.code() != Some(0) {
        return Err(format!("bitpoll-harness exited with {}:\n{stdout}", output.status).into());
    }
    let last = stdout.lines().last().unwrap_or_default();
    if last != summary {
        return Err(format!("expected the summary {summary:?}, got {last:?}:\n{stdout}").into());
    }
    Ok(())
}

fn main() {
    let arguments = Arguments::from_args();
    let source = std::env::var_os("BITPOLL_SRC").map(PathBuf::from);
    let skip_reason = match &source {
        None => Some(
            "BITPOLL_SRC is not set; point it at a Bitpoll 0.11 checkout to run these".to_string(),
        ),
        Some(path) if !path.join("manage.py").is_file() => Some(format!(
            "BITPOLL_SRC={} has no manage.py; it must be a Bitpoll checkout",
            path.display()
        )),
        Some(_) => None,
    };
    if let Some(reason) = &skip_reason {
        eprintln!("testbed_scenarios: skipped: {reason}");
    }
    // Steps that need systemd (unit states, restarts, the journal) are skipped here with their
    // reason; the systemd container testbed runs them (tests/container_scenarios.rs).
    let cases = [
        (
            "deployment_on_sqlite",
            "sqlite",
            "deployment",
            "15 passed, 0 failed, 2 skipped",
        ),
        (
            "deployment_on_postgresql",
            "postgresql",
            "deployment",
            "15 passed, 0 failed, 2 skipped",
        ),
        (
            "migrations_on_sqlite",
            "sqlite",
            "migrations",
            "2 passed, 0 failed, 6 skipped",
        ),
    ];
    let trials = cases
        .into_iter()
        .map(|(name, database, scenario, summary)| {
            let source = source.clone().unwrap_or_default();
            Trial::test(name, move || {
                run_scenario(&source, database, scenario, summary)
            })
            .with_kind("needs BITPOLL_SRC")
            .with_ignored_flag(skip_reason.is_some())
        })
        .collect();
    libtest_mimic::run(&arguments, trials).exit();
}
