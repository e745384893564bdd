//! The nixpkgs-bump gate on real fleet reports: each host compared with the baseline on its
//! own, a host that ran nothing counted as a regression, a baseline saved from one chosen host,
//! and directories that mix fleet and single reports refused.

#[path = "support/fleet.rs"]
mod fleet;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use fleet::{text, Fleet};

/// alpha and beta on this machine (beta's greeting makes `ok` fail there), and a closed port.
fn inventory(fleet: &Fleet, beta_greeting: &str) -> PathBuf {
    let text = format!(
        "[[host]]\nname = \"alpha\"\ntarget = \"local\"\n\n[[host]]\nname = \"beta\"\ntarget = \"local\"\nvars.greeting = \"{beta_greeting}\"\n\n\
         [[host]]\nname = \"closed\"\ntarget = \"ssh://nobody@127.0.0.1:{}\"\nconnect_timeout = \"2s\"\n",
        fleet.closed_port
    );
    let path = fleet.path("gate-fleet.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `ok` on the hosts and keeps the fleet report as DIR/fleet.json.
fn fleet_report(fleet: &Fleet, hosts: &str, beta_greeting: &str, dir: &str) -> PathBuf {
    let output = fleet.run(&inventory(fleet, beta_greeting), &["ok", "--hosts", hosts]);
    assert!(output.status.code().is_some(), "{}", text(&output));
    let dir = fleet.path(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fleet.path("report.json"), dir.join("fleet.json")).unwrap();
    dir
}

fn gate(args: &[&str], dir: &Path) -> Output {
    Command::cargo_bin("bitpoll-harness")
        .unwrap()
        .arg("gate")
        .arg("--from-reports")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn each_host_is_compared_with_the_baseline_on_its_own() {
    let fleet = Fleet::new();
    let good = fleet_report(&fleet, "alpha,beta", "hello", "good");
    // Two hosts: which one's results become the baseline must be said.
    let baseline = fleet.path("baseline.json");
    let refused = gate(&["--save-baseline", baseline.to_str().unwrap()], &good);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("hold 2 hosts (alpha, beta); choose the one whose results become the baseline with --host NAME"), "{}", text(&refused));
    let saved = gate(
        &[
            "--host",
            "alpha",
            "--save-baseline",
            baseline.to_str().unwrap(),
        ],
        &good,
    );
    assert_eq!(saved.status.code(), Some(0), "{}", text(&saved));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&baseline).unwrap()).unwrap();
    assert_eq!(written["steps"]["ok/greets"], "passed", "{written:#}");

    let passing = gate(&["--baseline", baseline.to_str().unwrap()], &good);
    assert_eq!(passing.status.code(), Some(0), "{}", text(&passing));
    assert!(
        text(&passing).contains("gate: 0 regression(s) on 0 of 2 host(s)"),
        "{}",
        text(&passing)
    );

    // beta now fails its step and closed cannot be reached: two hosts regress, alpha does not.
    let bad = fleet_report(&fleet, "alpha,beta,closed", "xyz", "bad");
    let failing = gate(&["--baseline", baseline.to_str().unwrap()], &bad);
    let all = text(&failing);
    assert_eq!(failing.status.code(), Some(1), "{all}");
    let section = |host: &str| {
        let start = all
            .find(&format!("host {host} ("))
            .unwrap_or_else(|| panic!("no section for {host}: {all}"));
        let rest = &all[start..];
        rest[..rest[1..].find("\nhost ").map_or(rest.len(), |end| end + 1)].to_string()
    };
    assert!(section("alpha").contains("0 regression(s)"), "{all}");
    assert!(
        section("beta").contains("ok/greets: passed -> failed"),
        "{all}"
    );
    assert!(
        section("closed").contains("regression: the host unreachable in"),
        "{all}"
    );
    assert!(
        all.contains("gate: 2 regression(s) on 2 of 3 host(s): beta, closed"),
        "{all}"
    );

    // --host narrows the comparison to one host.
    let alpha_only = gate(
        &["--baseline", baseline.to_str().unwrap(), "--host", "alpha"],
        &bad,
    );
    assert_eq!(alpha_only.status.code(), Some(0), "{}", text(&alpha_only));
    let unknown = gate(&["--host", "paris"], &bad);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("--host paris: no such host in the fleet reports"),
        "{}",
        text(&unknown)
    );
}

#[test]
fn fleet_and_single_reports_are_not_mixed() {
    let fleet = Fleet::new();
    let dir = fleet_report(&fleet, "alpha", "hello", "mixed");
    let single = Command::cargo_bin("bitpoll-harness")
        .unwrap()
        .args(["run", "ok", "--target", "local", "--scenarios"])
        .arg(fleet.path("scenarios"))
        .arg("--report")
        .arg(dir.join("single.json"))
        .output()
        .unwrap();
    assert_eq!(single.status.code(), Some(0), "{}", text(&single));
    let output = gate(&[], &dir);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("holds fleet reports and single runs' reports"),
        "{}",
        text(&output)
    );
}

#[test]
fn scenarios_a_host_left_out_are_regressions() {
    let fleet = Fleet::new();
    let output = fleet.run(
        &inventory(&fleet, "xyz"),
        &["ok", "fails", "--hosts", "beta", "--fail-fast"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let dir = fleet.path("partial");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fleet.path("report.json"), dir.join("fleet.json")).unwrap();
    let gated = gate(&[], &dir);
    let all = text(&gated);
    assert_eq!(gated.status.code(), Some(1), "{all}");
    assert!(
        all.contains("regression: the host did not run scenario `fails`"),
        "{all}"
    );
}

#[test]
fn a_report_from_a_newer_harness_is_refused_by_name() {
    let fleet = Fleet::new();
    let dir = fleet.path("future");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("r.json"),
        r#"{"schema_version": 99, "kind": "fleet"}"#,
    )
    .unwrap();
    let output = gate(&[], &dir);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("r.json: not a bitpoll-harness JSON report (schema_version 99 is newer than this harness reads (2)"), "{}", text(&output));
}
