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
        let base_url = stdout
            .lines()
            .find_map(|line| line.strip_prefix("BASE_URL="))
            .map(str::to_string);
        let testbed = Self {
            dir,
            base_url: base_url.clone().unwrap_or_default(),
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
            .arg("stop")
            .arg("--dir")
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
    let output = Command::new(env!("CARGO_BIN_EXE_bitpoll-harness"))
        .current_dir(repository())
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
    // The deployment scenario's one systemd step (the unit is active) is skipped here.
    let cases = [
        (
            "deployment_on_sqlite",
            "sqlite",
            "deployment",
            "15 passed, 0 failed, 1 skipped",
        ),
        (
            "deployment_on_postgresql",
            "postgresql",
            "deployment",
            "15 passed, 0 failed, 1 skipped",
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
