//! The shipped scenarios against a real Bitpoll started by the process testbed
//! (`ci/testbed/bitpoll-testbed`), on SQLite and on PostgreSQL, with `--target local`.
//! Steps that need systemd are skipped there with their reason; the systemd container testbed
//! runs them.
//!
//! Needs a Bitpoll checkout in BITPOLL_SRC; without it every trial is reported as ignored and
//! the reason is printed.

#[path = "support/process_testbed.rs"]
mod process_testbed;
#[path = "support/summary.rs"]
mod summary;

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};
use process_testbed::{skip_reason, Testbed};
use summary::expect_summary;

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
    expect_summary(&output, summary)
}

/// `eval "$(bitpoll-testbed env --dir DIR)"` in a fresh shell, then `bitpoll-harness run
/// deployment` from the root directory with no other argument: the printed environment is all
/// the harness needs (target, base URL, the layout's commands, settings, state, credentials).
fn deployment_from_the_printed_environment(source: &Path) -> Result<(), Failed> {
    let testbed = Testbed::start(source)?;
    let tool = process_testbed::repository().join("ci/testbed/bitpoll-testbed");
    let script =
        r#"set -e; eval "$("$TOOL" env --dir "$INSTANCE")"; cd /; exec "$HARNESS" run deployment"#;
    let output = std::process::Command::new("bash")
        .args(["-c", script])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", testbed.dir.path())
        .env("TOOL", tool)
        .env("INSTANCE", testbed.dir.path().join("instance"))
        .env("HARNESS", env!("CARGO_BIN_EXE_bitpoll-harness"))
        .output()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    expect_summary(&output, "15 passed, 0 failed, 2 skipped")
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
    let mut trials: Vec<Trial> = cases
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
    let from_environment = source.clone().unwrap_or_default();
    trials.push(
        Trial::test("deployment_from_the_printed_environment", move || {
            deployment_from_the_printed_environment(&from_environment)
        })
        .with_kind("needs BITPOLL_SRC")
        .with_ignored_flag(skip_reason.is_some()),
    );
    libtest_mimic::run(&arguments, trials).exit();
}
