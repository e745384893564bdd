//! Fleet runs with real targets that need no Bitpoll: the local machine, a real OpenSSH server
//! on 127.0.0.1, a port nothing listens on, and a listener that accepts and never answers.
//! Every host's result lands in the report whatever the others do; exit codes follow their
//! precedence; hosts really run side by side; --fail-fast leaves the rest not run; progress is
//! live under a pseudo-terminal and plain lines without one.

#[path = "support/fleet.rs"]
mod fleet;

use std::path::PathBuf;

use fleet::{host, text, Fleet};

#[test]
fn every_host_keeps_its_result_and_unreachable_wins_the_exit_code() {
    let fleet = Fleet::new();
    let output = fleet.run(&fleet.inventory(), &["ok"]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    let report = fleet.report();
    assert_eq!(report["schema_version"], 2);
    assert_eq!(report["kind"], "fleet");
    let names: Vec<&str> = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["alpha", "beta", "ssh", "closed", "hang"],
        "inventory order"
    );
    for name in ["alpha", "beta", "ssh"] {
        let host = host(&report, name);
        assert_eq!(host["status"], "passed", "{name}: {host:#}");
        assert_eq!(
            host["scenarios"][0]["steps"][0]["status"], "passed",
            "{host:#}"
        );
    }
    assert_eq!(host(&report, "ssh")["target"], fleet.sshd.target());
    // Each host has a run id of its own: hosts may share one Bitpoll, and slugs derive from it.
    let run_id = report["run_id"].as_str().unwrap();
    assert_eq!(host(&report, "alpha")["run_id"], format!("{run_id}-h1"));
    assert_eq!(host(&report, "ssh")["run_id"], format!("{run_id}-h3"));
    let closed = host(&report, "closed");
    assert_eq!(closed["status"], "unreachable", "{closed:#}");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{closed:#}"
    );
    assert_eq!(closed["not_run"], serde_json::json!(["ok"]));
    let hang = host(&report, "hang");
    assert_eq!(hang["status"], "unreachable", "{hang:#}");
    assert!(
        hang["reason"]
            .as_str()
            .unwrap()
            .contains("no SSH greeting came within 2s"),
        "{hang:#}"
    );
    let summary = &report["summary"];
    assert_eq!(
        (
            summary["hosts"].as_u64(),
            summary["hosts_passed"].as_u64(),
            summary["hosts_unreachable"].as_u64()
        ),
        (Some(5), Some(3), Some(2))
    );
    assert_eq!(summary["passed"], 3);
    // The table lists every host, and the reasons of those that ran nothing.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("closed: UNREACHABLE: "), "{all}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("beta ") && l.contains(" ok ")),
        "{all}"
    );
    assert!(stdout.trim_end().ends_with("5 host(s): 3 passed, 0 failed, 2 unreachable, 0 not run; steps: 3 passed, 0 failed, 0 skipped"), "{all}");
    // JUnit: one suite per host and scenario.
    let junit = std::fs::read_to_string(fleet.path("junit.xml")).unwrap();
    for suite in ["alpha/ok", "beta/ok", "ssh/ok", "closed/ok", "hang/ok"] {
        assert!(
            junit.contains(&format!("<testsuite name=\"{suite}\"")),
            "{suite}:\n{junit}"
        );
    }
    assert!(junit.contains("errors=\"2\""), "{junit}");
}

#[test]
fn a_failed_step_is_exit_1_and_its_failure_is_shown_under_its_host() {
    let fleet = Fleet::new();
    let output = fleet.run(&fleet.inventory(), &["ok", "fails", "--hosts", "local,ssh"]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    let report = fleet.report();
    assert_eq!(report["hosts"].as_array().unwrap().len(), 3, "{report:#}");
    for name in ["alpha", "beta", "ssh"] {
        assert_eq!(host(&report, name)["status"], "failed");
        assert_eq!(host(&report, name)["summary"]["failed"], 1);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("failures on beta (local):\n  scenario fails:\n  FAIL  false"),
        "{all}"
    );
    assert!(
        stdout.contains("broken"),
        "the output of the failed step is shown: {all}"
    );
}

#[test]
fn a_hosts_vars_replace_the_scenarios() {
    let fleet = Fleet::new();
    let output = fleet.run(&fleet.inventory(), &["greeting", "--hosts", "local"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report = fleet.report();
    assert_eq!(host(&report, "beta")["status"], "passed", "{report:#}");
    assert_eq!(host(&report, "alpha")["status"], "failed", "{report:#}");
}

#[test]
fn a_selection_of_healthy_hosts_passes_with_exit_0() {
    let fleet = Fleet::new();
    let output = fleet.run(
        &fleet.inventory(),
        &["ok", "--hosts", "ssh", "--hosts", "alpha"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let names: Vec<String> = fleet.report()["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["alpha", "ssh"]);
}

fn rendezvous_inventory(fleet: &Fleet) -> PathBuf {
    let dir = fleet.path("meet");
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "[defaults]\nvars.dir = \"{}\"\n\n[[host]]\nname = \"one\"\ntarget = \"local\"\nvars.me = \"one\"\nvars.other = \"two\"\n\n\
         [[host]]\nname = \"two\"\ntarget = \"local\"\nvars.me = \"two\"\nvars.other = \"one\"\n",
        dir.display()
    );
    let path = fleet.path("pair.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn hosts_run_side_by_side_up_to_parallel() {
    let fleet = Fleet::new();
    let inventory = rendezvous_inventory(&fleet);
    let together = fleet.run(&inventory, &["rendezvous"]);
    assert_eq!(
        together.status.code(),
        Some(0),
        "both hosts at once meet: {}",
        text(&together)
    );
    let _ = std::fs::remove_dir_all(fleet.path("meet"));
    std::fs::create_dir_all(fleet.path("meet")).unwrap();
    // One at a time, the first host waits for the second in vain.
    let alone = fleet.run(&inventory, &["rendezvous", "--parallel", "1"]);
    assert_eq!(alone.status.code(), Some(1), "{}", text(&alone));
    assert_eq!(host(&fleet.report(), "one")["status"], "failed");
}

#[test]
fn fail_fast_leaves_the_hosts_not_started_as_not_run() {
    let fleet = Fleet::new();
    let output = fleet.run(
        &fleet.inventory(),
        &[
            "fails",
            "--hosts",
            "local,ssh",
            "--parallel",
            "1",
            "--fail-fast",
        ],
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    let report = fleet.report();
    assert_eq!(host(&report, "alpha")["status"], "failed", "{report:#}");
    for name in ["beta", "ssh"] {
        let host = host(&report, name);
        assert_eq!(host["status"], "not_run", "{host:#}");
        assert!(
            host["reason"].as_str().unwrap().contains("--fail-fast"),
            "{host:#}"
        );
    }
    assert_eq!(report["summary"]["hosts_not_run"], 2);
}

#[test]
fn progress_is_plain_lines_without_a_terminal() {
    let fleet = Fleet::new();
    let output = fleet.run(&fleet.inventory(), &["ok", "--hosts", "alpha,closed"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains('\x1b'),
        "no escape codes in a pipe: {stdout:?}"
    );
    for line in [
        "[alpha] connecting to local",
        "[alpha] scenario ok",
        "[alpha] PASS  greets",
        "[alpha] done: passed in",
        "[closed] done: UNREACHABLE: ",
    ] {
        assert!(stdout.contains(line), "{line:?} in:\n{stdout}");
    }
}

#[test]
fn progress_is_one_live_line_per_host_on_a_terminal() {
    let fleet = Fleet::new();
    let inventory = fleet.inventory();
    // util-linux `script` runs the harness under a pseudo-terminal and copies what it drew.
    let command = format!(
        "{} run ok --scenarios {} --inventory {} --hosts alpha,beta,closed",
        env!("CARGO_BIN_EXE_bitpoll-harness"),
        fleet.path("scenarios").display(),
        inventory.display()
    );
    let output = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("COLUMNS", "120")
        .output()
        .expect("script runs (package bsdutils)");
    let drawn = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{drawn}");
    assert!(
        drawn.contains("\x1b[2K"),
        "lines are cleared and redrawn: {drawn:?}"
    );
    assert!(
        drawn.contains("\x1b[3A"),
        "the cursor goes back up over the three hosts: {drawn:?}"
    );
    assert!(
        !drawn.contains("[alpha] "),
        "no plain lines on a terminal: {drawn:?}"
    );
    let last_frame = drawn.rsplit("\x1b[3A").next().unwrap();
    for host in ["alpha", "beta", "closed"] {
        assert!(
            last_frame.contains(host),
            "{host} in the last frame: {last_frame:?}"
        );
    }
    assert!(last_frame.contains("passed in"), "{last_frame:?}");
    assert!(last_frame.contains("UNREACHABLE"), "{last_frame:?}");
}

#[test]
fn command_line_ssh_options_fill_in_what_a_host_leaves_unset() {
    let fleet = Fleet::new();
    let inventory = fleet.path("bare.toml");
    std::fs::write(
        &inventory,
        format!(
            "[[host]]\nname = \"ssh\"\ntarget = \"{}\"\nconnect_timeout = \"3s\"\n",
            fleet.sshd.target()
        ),
    )
    .unwrap();
    let key = fleet.sshd.user_key.display().to_string();
    let known = fleet.sshd.known_hosts.display().to_string();
    let output = fleet.run(
        &inventory,
        &["ok", "--identity", &key, "--known-hosts-file", &known],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // Without them the host's own (unset) values hold: no known key for it, so unreachable.
    let output = fleet.run(&inventory, &["ok"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert_eq!(host(&fleet.report(), "ssh")["status"], "unreachable");
}

#[test]
fn fail_fast_stops_running_hosts_before_their_next_scenario() {
    let fleet = Fleet::new();
    let output = fleet.run(
        &fleet.inventory(),
        &[
            "fails",
            "ok",
            "--hosts",
            "local",
            "--parallel",
            "2",
            "--fail-fast",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report = fleet.report();
    // No host starts `ok` once one has failed: a host that got as far as `fails` failed it; one
    // that started after the first failure ran nothing and is `not_run`.
    for name in ["alpha", "beta"] {
        let host = host(&report, name);
        let ran: Vec<&str> = host["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["scenario"].as_str().unwrap())
            .collect();
        match ran[..] {
            ["fails"] => {
                assert_eq!(host["status"], "failed", "{host:#}");
                assert_eq!(host["not_run"], serde_json::json!(["ok"]), "{host:#}");
            }
            [] => {
                assert_eq!(host["status"], "not_run", "{host:#}");
                assert_eq!(
                    host["not_run"],
                    serde_json::json!(["fails", "ok"]),
                    "{host:#}"
                );
            }
            _ => panic!("{name} ran {ran:?} after a failure: {host:#}"),
        }
    }
    let failed = ["alpha", "beta"]
        .iter()
        .filter(|name| host(&report, name)["status"] == "failed")
        .count();
    assert!(failed >= 1, "some host ran `fails`: {report:#}");
}

#[test]
fn a_target_left_in_the_environment_is_set_aside_and_one_given_is_refused() {
    let fleet = Fleet::new();
    let inventory = fleet.inventory();
    let mut command = assert_cmd::Command::cargo_bin("bitpoll-harness").unwrap();
    let output = command
        .env("BITPOLL_HARNESS_TARGET", "local")
        .args(["run", "ok", "--hosts", "alpha", "--scenarios"])
        .arg(fleet.path("scenarios"))
        .arg("--inventory")
        .arg(&inventory)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        text(&output)
            .contains("BITPOLL_HARNESS_TARGET=local is ignored: the inventory names the hosts"),
        "{}",
        text(&output)
    );
    let output = fleet.run(&inventory, &["ok", "--target", "ssh://x@y"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output)
            .contains("--target ssh://x@y: a fleet run takes its hosts from the inventory"),
        "{}",
        text(&output)
    );
}
