//! The command line end to end: exit codes 0, 1 and 2, the summary line, the JSON and JUnit
//! files, `list` and `check`, and steps skipped with their reason.

#[path = "support/scenario_dir.rs"]
mod scenario_dir;

use predicates::prelude::*;
use scenario_dir::{harness, run_local, ScenarioDir};

const PASSING: &str = r#"
[scenario]
name = "passing"
summary = "every step passes"

[vars]
word = "default"

[[step]]
name = "echo the word"
run = ["echo", "{{word}}"]
expect.stdout = "{{word}}"
"#;

const FAILING: &str = r#"
[scenario]
name = "failing"
summary = "the second step fails"

[[step]]
name = "ok"
run = ["true"]

[[step]]
name = "broken"
sh = "echo 'something went wrong' >&2; exit 4"

[[step]]
name = "after"
run = ["true"]

[[step]]
name = "cleanup"
always = true
run = ["true"]
"#;

#[test]
fn a_passing_run_exits_0_with_the_summary_last() {
    let dir = ScenarioDir::new();
    let file = dir.write("passing.toml", PASSING);
    run_local(&file, None)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("  PASS  echo the word ("))
        .stdout(predicate::str::ends_with("1 passed, 0 failed, 0 skipped\n"));
}

#[test]
fn var_overrides_reach_the_steps() {
    let dir = ScenarioDir::new();
    let file = dir.write("passing.toml", PASSING);
    harness()
        .args([
            "run",
            file.to_str().unwrap(),
            "--target",
            "local",
            "--var",
            "word=override",
        ])
        .assert()
        .code(0);
    harness()
        .args([
            "run",
            file.to_str().unwrap(),
            "--target",
            "local",
            "--var",
            "nope=1",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--var nope: no scenario of this run declares `nope` in [vars]; they declare: word",
        ));
}

#[test]
fn a_failing_step_exits_1_shows_what_ran_and_still_runs_cleanup() {
    let dir = ScenarioDir::new();
    let file = dir.write("failing.toml", FAILING);
    run_local(&file, None)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("  FAIL  broken ("))
        .stdout(predicate::str::contains("exit code 4, expected 0"))
        .stdout(predicate::str::contains(
            "sh: sh -c 'echo '\\''something went wrong'\\'' >&2; exit 4'",
        ))
        .stdout(predicate::str::contains("something went wrong"))
        .stdout(predicate::str::contains(
            "  SKIP  after (0ms): not run: an earlier step failed",
        ))
        .stdout(predicate::str::contains("  PASS  cleanup ("))
        .stdout(predicate::str::ends_with("2 passed, 1 failed, 1 skipped\n"));
}

#[test]
fn json_and_junit_reports_follow_the_documented_schema() {
    let dir = ScenarioDir::new();
    let passing = dir.write("passing.toml", PASSING);
    let failing = dir.write("failing.toml", FAILING);
    let report = dir.path("out/report.json");
    let junit = dir.path("out/junit.xml");
    let output = harness()
        .args([
            "run",
            passing.to_str().unwrap(),
            failing.to_str().unwrap(),
            "--target",
            "local",
        ])
        .args([
            "--format",
            "json",
            "--report",
            report.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is the JSON report alone");
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(stdout, file);
    assert_eq!(file["schema_version"], 2);
    assert_eq!(file["target"], "local");
    assert!(file["run_id"].as_str().unwrap().starts_with('r'));
    assert_eq!(
        file["summary"],
        serde_json::json!({"passed": 3, "failed": 1, "skipped": 1})
    );
    let steps = &file["scenarios"][1]["steps"];
    assert_eq!(file["scenarios"][1]["scenario"], "failing");
    assert_eq!(file["scenarios"][1]["status"], "failed");
    assert_eq!(steps[1]["name"], "broken");
    assert_eq!(steps[1]["action"], "sh");
    assert_eq!(steps[1]["status"], "failed");
    assert_eq!(steps[1]["message"], "exit code 4, expected 0");
    assert_eq!(steps[1]["detail"]["exit_code"], 4);
    assert!(steps[1]["duration_ms"].is_u64());
    assert_eq!(steps[2]["status"], "skipped");
    assert!(
        steps[0].get("message").is_none(),
        "passed steps carry no message"
    );
    // People still see the summary, on stderr, when stdout is JSON.
    assert!(String::from_utf8_lossy(&output.stderr).ends_with("3 passed, 1 failed, 1 skipped\n"));

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"bitpoll-harness\" tests=\"5\" failures=\"1\" skipped=\"1\""), "{xml}");
    assert!(
        xml.contains("<testsuite name=\"failing\" tests=\"4\" failures=\"1\" skipped=\"1\""),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"exit code 4, expected 0\">"),
        "{xml}"
    );
    assert!(
        xml.contains("<skipped message=\"not run: an earlier step failed\"/>"),
        "{xml}"
    );
}

#[test]
fn steps_the_target_cannot_perform_are_skipped_with_the_reason_never_passed() {
    // This host (and CI) has no systemd as PID 1; where it has, the test does not apply.
    if std::path::Path::new("/run/systemd/system").exists() {
        panic!("this test needs a host without systemd; run it in CI's environment");
    }
    let dir = ScenarioDir::new();
    let file = dir.write(
        "units.toml",
        r#"
[scenario]
name = "units"
summary = "unit steps on a target without systemd"

[[step]]
name = "unit state"
unit = "bitpoll.service"

[[step]]
name = "wait"
wait_for_unit = "bitpoll.service"

[[step]]
name = "needs systemd"
run = ["systemd-analyze", "security", "bitpoll.service"]
requires = ["systemd"]
"#,
    );
    run_local(&file, None)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("  SKIP  unit state (0ms): needs systemd: local does not run systemd (/run/systemd/system is absent)"))
        .stdout(predicate::str::contains("  SKIP  needs systemd (0ms): needs systemd"))
        .stdout(predicate::str::ends_with("0 passed, 0 failed, 3 skipped\n"));
}

#[test]
fn usage_and_scenario_errors_exit_2() {
    let dir = ScenarioDir::new();
    let bad = dir.write(
        "bad.toml",
        "[scenario]\nname = \"bad\"\nsummary = \"x\"\n[[step]]\nname = \"a\"\n",
    );
    run_local(&bad, None)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "bad.toml:4:1: step `a` has no action",
        ));
    let http = dir.write(
        "http.toml",
        "[scenario]\nname = \"web\"\nsummary = \"x\"\n[[step]]\nname = \"a\"\nhttp = \"/\"\n",
    );
    run_local(&http, None)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "scenario `web` has http steps; pass --base-url URL",
        ));
    harness()
        .args(["run", "no-such-scenario", "--target", "local"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no scenario `no-such-scenario`"));
    let plain = dir.write("plain.toml", PASSING);
    harness()
        .args(["run", plain.to_str().unwrap(), "--target", "telnet://x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "target `telnet://x` is not `local` or `ssh://USER@HOST[:PORT]`",
        ));
    harness()
        .args(["run", "--target", "local"])
        .assert()
        .code(2);
    harness().args(["frobnicate"]).assert().code(2);
}

#[test]
fn check_reports_every_problem_and_exits_2() {
    let dir = ScenarioDir::new();
    let good = dir.write("good.toml", PASSING);
    let bad = dir.write(
        "bad.toml",
        "[scenario]\nname = \"bad\"\nsummary = \"x\"\nsumary = \"typo\"\n[[step]]\nname = \"a\"\nrun = [\"echo\", \"{{missing}}\"]\n",
    );
    harness()
        .args(["check", good.to_str().unwrap()])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("good.toml: ok (1 steps)"));
    harness()
        .args(["check", good.to_str().unwrap(), bad.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{}:4:1: unknown key `sumary` in [scenario]",
            bad.display()
        )))
        .stderr(predicate::str::contains(format!(
            "{}:7:17: `{{{{missing}}}}` is not defined here",
            bad.display()
        )))
        .stderr(predicate::str::contains("2 problem(s) found"));
}

#[test]
fn list_shows_names_and_summaries() {
    let dir = ScenarioDir::new();
    dir.write("b.toml", FAILING);
    dir.write("a.toml", PASSING);
    dir.write("notes.txt", "not a scenario");
    harness()
        .args(["list", dir.dir.path().to_str().unwrap()])
        .assert()
        .code(0)
        .stdout("passing  every step passes\nfailing  the second step fails\n");
    harness()
        .args(["list", "/nonexistent/scenarios"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot read scenario directory /nonexistent/scenarios",
        ));
}

#[test]
fn the_shipped_scenarios_are_listed_from_the_repository_root() {
    harness()
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .arg("list")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("deployment"));
}

#[test]
fn help_names_every_command_and_the_exit_codes() {
    harness()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("list"))
        .stdout(predicate::str::contains("check"))
        .stdout(predicate::str::contains("run"))
        .stdout(predicate::str::contains("Exit codes: 0 all steps passed"));
    harness()
        .args(["run", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--known-hosts <KNOWN_HOSTS>"))
        .stdout(predicate::str::contains("accept-new"))
        .stdout(predicate::str::contains("--var <NAME=VALUE>"));
}

#[test]
fn metrics_of_passed_steps_are_reported() {
    let dir = ScenarioDir::new();
    let file = dir.write(
        "metrics.toml",
        r#"
[scenario]
name = "metrics"
summary = "durations and captured numbers as metrics"

[[step]]
name = "timed"
run = ["sleep", "0.2"]
metric = "sleep_ms"

[[step]]
name = "measured"
sh = "echo 'MemoryCurrent=123456'"
capture.memory_bytes = { regex = "MemoryCurrent=(\\d+)", metric = true }

[[step]]
name = "not a number"
sh = "echo 'MemoryCurrent=[not set]'"
capture.memory = { regex = "MemoryCurrent=(.*)", metric = true }
"#,
    );
    let report = dir.path("report.json");
    run_local(&file, None)
        .args(["--report", report.to_str().unwrap()])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "capture `memory` is a metric but \"[not set]\" is not a number",
        ));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    let steps = &json["scenarios"][0]["steps"];
    let sleep_ms = steps[0]["metrics"]["sleep_ms"].as_f64().unwrap();
    assert!((200.0..5000.0).contains(&sleep_ms), "{sleep_ms}");
    assert_eq!(steps[1]["metrics"]["memory_bytes"], 123456.0);
    assert!(steps[2].get("metrics").is_none());
}
