//! The shipped scenarios against a real Bitpoll started by the process testbed
//! (`ci/testbed/bitpoll-testbed`), on SQLite and on PostgreSQL, with `--target local`.
//! Steps that need systemd are skipped there with their reason; the systemd container testbed
//! runs them.
//!
//! Needs a Bitpoll checkout in BITPOLL_SRC; without it every trial is reported as ignored and
//! the reason is printed.

#[path = "support/process_testbed.rs"]
mod process_testbed;

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};
use process_testbed::{skip_reason, Testbed};

fn run_scenario(
    source: &Path,
    database: &str,
    scenario: &str,
    summary: &str,
) -> Result<(), Failed> {
    let testbed = Testbed::start_with_database(source, database)?;
    let report = testbed.dir.path().join("report.json");
    let base_url = testbed.value("BASE_URL").unwrap_or_default().to_string();
    let output = testbed
        .harness()
        .args([
            "run",
            scenario,
            "--target",
            "local",
            "--base-url",
            &base_url,
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
    let skip_reason = skip_reason(source.as_deref());
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
