//! `vm`
//! against a stand-in `nix` that records its arguments and prints canned outputs (store paths of
//! directories prepared here, holding real reports of the harness): every command the harness
//! would run is checked argument by argument. Nix cannot build a VM here, so nothing real is
//! built.
#[path = "support/nix_standin.rs"]
mod nix_standin;
#[path = "support/nix_suite.rs"]
mod nix_suite;

use nix_standin::{nix_call, write_executable, StandIn};
use nix_suite::{build_run, list_checks, vm_stand_in, CHECKS};
use predicates::prelude::*;

#[test]
fn vm_builds_each_run_and_prints_the_reports_of_the_vms() {
    let stand_in = vm_stand_in();
    let report = stand_in.path("merged.json");
    stand_in
        .harness(stand_in.dir.path())
        .args(["vm", "deployment", "migrations", "--system", "x86_64-linux"])
        .arg("--report")
        .arg(&report)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("scenario deployment ("))
        .stdout(predicate::str::contains("  PASS  the service answers ("))
        .stdout(predicate::str::contains(
            "  FAIL  nothing left to migrate (",
        ))
        .stdout(predicate::str::ends_with("3 passed, 1 failed, 0 skipped\n"));
    assert_eq!(
        stand_in.calls(),
        vec![
            list_checks("."),
            build_run(".", "deployment", &[]),
            build_run(".", "migrations", &[]),
        ]
    );
    let merged: bitpoll_harness::report::Report =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    let names: Vec<&str> = merged
        .scenarios
        .iter()
        .map(|s| s.scenario.as_str())
        .collect();
    assert_eq!(names, ["deployment", "migrations"]);
    assert_eq!(merged.summary.failed, 1);
}

#[test]
fn vm_stops_at_the_first_failed_scenario_unless_keep_going() {
    let stand_in = vm_stand_in();
    stand_in
        .harness(stand_in.dir.path())
        .args(["vm", "migrations", "deployment", "--system", "x86_64-linux"])
        .args(["--flake", "github:OWNER/bitpoll-nix"])
        .assert()
        .code(1);
    let flake = "github:OWNER/bitpoll-nix";
    assert_eq!(
        stand_in.calls(),
        vec![list_checks(flake), build_run(flake, "migrations", &[])]
    );

    let stand_in = vm_stand_in();
    stand_in
        .harness(stand_in.dir.path())
        .args(["vm", "migrations", "deployment", "--system", "x86_64-linux"])
        .args(["--flake", flake, "--keep-going", "--format", "json"])
        .assert()
        .code(1)
        .stdout(predicate::str::starts_with("{"))
        .stdout(predicate::str::contains("\"scenario\": \"deployment\""));
    assert_eq!(
        stand_in.calls(),
        vec![
            list_checks(flake),
            build_run(flake, "migrations", &["--keep-going"]),
            build_run(flake, "deployment", &["--keep-going"]),
        ]
    );
}

#[test]
fn vm_refuses_a_scenario_the_flake_has_no_check_for() {
    let stand_in = vm_stand_in();
    stand_in
        .harness(stand_in.dir.path())
        .args(["vm", "deployment", "nope", "--system", "x86_64-linux"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "error: flake . has no check vm-nope for x86_64-linux (scenario `nope`); its VM checks are: vm-deployment, vm-migrations",
        ));
    assert_eq!(stand_in.calls(), vec![list_checks(".")]);
}

#[test]
fn vm_without_nix_says_what_to_install() {
    let empty = tempfile::tempdir().unwrap();
    let mut command = assert_cmd::Command::cargo_bin("bitpoll-harness").unwrap();
    command
        .env("PATH", empty.path())
        .args(["vm", "deployment", "--system", "x86_64-linux"])
        .assert()
        .code(2)
        .stderr(
            "error: nix is not installed or not on PATH: install Nix 2.18 or newer with flakes (https://nixos.org/download) and run this again\n",
        );
}

#[test]
fn a_failed_nix_build_is_exit_2_with_nixs_message() {
    let stand_in = StandIn::new(&format!(
        r#"case "$*" in
  *"--apply builtins.attrNames"*) echo '{CHECKS}' ;;
  *) echo "vm-test-run-bitpoll-deployment> booting" >&2
     echo "error: builder for '/nix/store/abc-vm-test-run-bitpoll-deployment.drv' failed with exit code 1" >&2
     exit 1 ;;
esac"#
    ));
    stand_in
        .harness(stand_in.dir.path())
        .args(["vm", "deployment", "--system", "x86_64-linux"])
        .assert()
        .code(2)
        // The build's progress is passed through as it comes, and the error is kept.
        .stderr(predicate::str::contains("vm-test-run-bitpoll-deployment> booting\n"))
        .stderr(predicate::str::contains(
            "error: builder for '/nix/store/abc-vm-test-run-bitpoll-deployment.drv' failed with exit code 1",
        ))
        .stdout(predicate::str::ends_with("0 passed, 0 failed, 0 skipped\n"));
}

#[test]
fn vm_interactive_starts_the_driver_of_one_scenario() {
    let stand_in = StandIn::new(&format!(
        r#"case "$*" in
  *"--apply builtins.attrNames"*) echo '{CHECKS}' ;;
  *".vm-deployment.driverInteractive"*) echo "$here/driver" ;;
  *) exit 9 ;;
esac"#
    ));
    std::fs::create_dir_all(stand_in.path("driver/bin")).unwrap();
    write_executable(
        &stand_in.path("driver/bin/nixos-test-driver"),
        "#!/bin/sh\necho \"driver started with $# arguments\"\nexit 7\n",
    );
    stand_in
        .harness(stand_in.dir.path())
        .args([
            "vm",
            "deployment",
            "--interactive",
            "--system",
            "x86_64-linux",
        ])
        .assert()
        .code(7)
        .stdout("driver started with 0 arguments\n");
    assert_eq!(
        stand_in.calls(),
        vec![
            list_checks("."),
            nix_call(&[
                "build",
                "--no-link",
                "--print-out-paths",
                ".#checks.x86_64-linux.vm-deployment.driverInteractive"
            ]),
        ]
    );
    stand_in
        .harness(stand_in.dir.path())
        .args(["vm", "deployment", "migrations", "--interactive"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--interactive starts one scenario's test driver; name exactly one scenario (got 2)",
        ));
}
