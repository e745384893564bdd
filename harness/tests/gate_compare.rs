//! The nixpkgs-bump gate's comparison on real reports: a real Bitpoll from the process testbed,
//! the shipped deployment scenario and a scenario of real measurements (Django's start-up, the
//! first page, the exposure of the module's rendered service unit scored by systemd-analyze, the
//! server's resident memory), run twice. The two runs must compare without a regression under
//! the thresholds; copies of the second report altered one way each (a failed step, a doubled
//! duration, a higher exposure, more memory) must each be a regression, printed as such. The
//! reports go through `bitpoll-harness gate --from-reports`, as a user would run it.
//!
//! Needs a Bitpoll checkout in BITPOLL_SRC; ignored with the reason otherwise.

#[path = "support/process_testbed.rs"]
mod process_testbed;

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use process_testbed::{repository, skip_reason, Testbed};
use serde_json::Value;

/// Real measurements that need no systemd (the process testbed has none).
const MEASURED: &str = r#"
[scenario]
name = "measured"
summary = "real measurements on the process testbed, for the gate's comparison"

[vars]
unit_file = "/nonexistent"
server_pid = "0"

# Four starts in a row: one start of Django varies by more than the gate's +50% here, the
# sum of four much less.
[[step]]
name = "django starts and checks the project"
run = ["bitpoll-manage", "check"]
expect.stdout.contains = "System check identified no issues"
repeat = { count = 4, interval = "0ms" }
metric = "manage_check_ms"

[[step]]
name = "the front page answers"
http = "/"
expect.status = 200
metric = "first_page_ms"

[[step]]
name = "the exposure of the rendered service unit"
run = ["systemd-analyze", "security", "--offline=true", "--no-pager", "{{unit_file}}"]
capture.exposure = { regex = "Overall exposure level for \\S+: ([0-9.]+)", metric = true }

[[step]]
name = "memory of the server and its workers"
sh = "ps -o rss= -p {{server_pid}} --ppid {{server_pid}} | awk '{ total += $1 } END { print total * 1024 }'"
capture.memory_rss_bytes = { regex = "^([1-9][0-9]*)$", metric = true }
"#;

struct Work {
    dir: tempfile::TempDir,
    testbed: Testbed,
    scenario: PathBuf,
    unit_file: PathBuf,
}

impl Work {
    fn new(source: &Path) -> Result<Self, Failed> {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let scenario = dir.path().join("measured.toml");
        std::fs::write(&scenario, MEASURED).map_err(|e| e.to_string())?;
        let units = dir.path().join("units");
        let rendered = Command::new(repository().join("ci/render-units"))
            .arg(&units)
            .output()
            .map_err(|e| format!("cannot run ci/render-units: {e}"))?;
        if !rendered.status.success() {
            return Err(format!(
                "ci/render-units failed: {}",
                String::from_utf8_lossy(&rendered.stderr)
            )
            .into());
        }
        let testbed = Testbed::start(source)?;
        Ok(Self {
            unit_file: units.join("bitpoll.service"),
            dir,
            testbed,
            scenario,
        })
    }

    /// One run of both scenarios; its report lands in `DIR/name/report.json`.
    fn run(&self, name: &str) -> Result<PathBuf, Failed> {
        let out = self.dir.path().join(name);
        std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        let output = self
            .testbed
            .harness()
            .arg("run")
            .arg("deployment")
            .arg(&self.scenario)
            .args(["--target", "local", "--base-url"])
            .arg(self.testbed.value("BASE_URL").unwrap_or_default())
            .arg("--var")
            .arg(format!("unit_file={}", self.unit_file.display()))
            .arg("--var")
            .arg(format!(
                "server_pid={}",
                self.testbed.value("SERVER_PID").unwrap_or_default()
            ))
            .arg("--report")
            .arg(out.join("report.json"))
            .output()
            .map_err(|e| format!("cannot run bitpoll-harness: {e}"))?;
        if output.status.code() != Some(0) {
            return Err(format!(
                "run {name} exited with {}:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout)
            )
            .into());
        }
        Ok(out)
    }

    /// `gate --from-reports DIR [ARGS...]`: its exit code and stdout.
    fn gate(&self, reports: &Path, args: &[&str]) -> Result<(i32, String), Failed> {
        let output = Command::new(env!("CARGO_BIN_EXE_bitpoll-harness"))
            .arg("gate")
            .arg("--from-reports")
            .arg(reports)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run bitpoll-harness gate: {e}"))?;
        Ok((
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        ))
    }
}

/// The lines of the `regressions (N):` section of the gate's diff.
fn regressions(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip_while(|line| !line.starts_with("regressions ("))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .map(|line| line.trim().to_string())
        .collect()
}

fn step_mut<'a>(report: &'a mut Value, scenario: &str, step: &str) -> &'a mut Value {
    report["scenarios"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["scenario"] == scenario)
        .unwrap()["steps"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["name"] == step)
        .unwrap_or_else(|| panic!("no step {scenario}/{step}"))
}

fn compare_real_runs(source: &Path) -> Result<(), Failed> {
    let work = Work::new(source)?;
    // The first run pays for cold caches (Python byte code, the page cache); the two compared
    // runs come after it, as on a builder that ran the VM before.
    work.run("warm-up")?;
    let first = work.run("first")?;
    let second = work.run("second")?;

    let baseline = work.dir.path().join("baseline.json");
    let baseline_arg = baseline.to_str().unwrap();
    let (code, stdout) = work.gate(&first, &["--save-baseline", baseline_arg])?;
    if code != 0 {
        return Err(format!("gate on the first run exited with {code}:\n{stdout}").into());
    }
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&baseline).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    for metric in [
        "measured/manage_check_ms",
        "measured/first_page_ms",
        "measured/exposure",
        "measured/memory_rss_bytes",
    ] {
        if !saved["metrics"][metric].is_number() {
            return Err(format!("the baseline has no {metric}:\n{saved:#}").into());
        }
    }
    let check_ms = saved["metrics"]["measured/manage_check_ms"]
        .as_f64()
        .unwrap();
    if check_ms < 500.0 {
        return Err(format!(
            "bitpoll-manage check took {check_ms} ms; doubling it would stay under the 500 ms floor, so the test below would prove nothing"
        )
        .into());
    }

    let (code, stdout) = work.gate(&second, &["--baseline", baseline_arg])?;
    if code != 0 || !regressions(&stdout).is_empty() || !stdout.contains("0 regression(s)") {
        return Err(format!(
            "two real runs should compare without a regression (exit {code}):\n{stdout}"
        )
        .into());
    }

    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(second.join("report.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    // Each alteration sets one value of the second run relative to the baseline's, so that
    // the run-to-run noise of the real measurements cannot hide it.
    let base = |metric: &str| {
        saved["metrics"][format!("measured/{metric}")]
            .as_f64()
            .unwrap()
    };
    let set_metric = |report: &mut Value, step: &str, metric: &str, value: f64| {
        step_mut(report, "measured", step)["metrics"][metric] = value.into();
    };
    type Alteration<'a> = Box<dyn Fn(&mut Value) + 'a>;
    let alterations: Vec<(&str, Alteration, &str)> = vec![
        (
            "a failed step",
            Box::new(|report: &mut Value| {
                let step = step_mut(report, "deployment", "the front page answers");
                step["status"] = "failed".into();
                step["message"] = "status 502, expected 200".into();
            }),
            "deployment/the front page answers: passed -> failed",
        ),
        (
            "a doubled duration",
            Box::new(|report: &mut Value| {
                let value = base("manage_check_ms") * 2.0;
                set_metric(
                    report,
                    "django starts and checks the project",
                    "manage_check_ms",
                    value,
                );
            }),
            "measured/manage_check_ms: ",
        ),
        (
            "a higher exposure",
            Box::new(|report: &mut Value| {
                let value = base("exposure") + 0.5;
                set_metric(
                    report,
                    "the exposure of the rendered service unit",
                    "exposure",
                    value,
                );
            }),
            "measured/exposure: ",
        ),
        (
            "more memory",
            Box::new(|report: &mut Value| {
                let value = base("memory_rss_bytes") * 1.5;
                set_metric(
                    report,
                    "memory of the server and its workers",
                    "memory_rss_bytes",
                    value,
                );
            }),
            "measured/memory_rss_bytes: ",
        ),
    ];
    for (index, (what, alter, expected)) in alterations.into_iter().enumerate() {
        let mut altered = report.clone();
        alter(&mut altered);
        let dir = work.dir.path().join(format!("altered-{index}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("report.json"), altered.to_string()).map_err(|e| e.to_string())?;
        let (code, stdout) = work.gate(&dir, &["--baseline", baseline_arg])?;
        let found = regressions(&stdout);
        if code != 1 || found.len() != 1 || !found[0].starts_with(expected) {
            return Err(format!(
                "{what}: expected exit 1 and the one regression `{expected}...`, got exit {code} and {found:?}:\n{stdout}"
            )
            .into());
        }
    }
    Ok(())
}

fn main() {
    let arguments = Arguments::from_args();
    let source = std::env::var_os("BITPOLL_SRC").map(PathBuf::from);
    let reason = skip_reason(source.as_deref());
    if let Some(reason) = &reason {
        eprintln!("gate_compare: skipped: {reason}");
    }
    let source = source.unwrap_or_default();
    let trial = Trial::test(
        "two_real_runs_compare_and_each_alteration_regresses",
        move || compare_real_runs(&source),
    )
    .with_kind("needs BITPOLL_SRC")
    .with_ignored_flag(reason.is_some());
    libtest_mimic::run(&arguments, vec![trial]).exit();
}
