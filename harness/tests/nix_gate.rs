//! `gate`
//! against a stand-in `nix` that records its arguments and prints canned outputs (store paths of
//! directories prepared here, holding real reports of the harness): every command the harness
//! would run is checked argument by argument. Nix cannot build a VM here, so nothing real is
//! built.
#[path = "support/nix_standin.rs"]
mod nix_standin;
#[path = "support/nix_suite.rs"]
mod nix_suite;

use nix_standin::{nix_call, vm_output, StandIn, PASSING};
use nix_suite::{build_run, list_checks, repository, CHECKS};
use predicates::prelude::*;

/// A stand-in for the gate: checks, runs, the package and its closure size.
fn gate_stand_in(closure: u64) -> StandIn {
    let stand_in = StandIn::new(&format!(
        r##"case "$*" in
  *"--apply builtins.attrNames"*) echo '{CHECKS}' ;;
  *".vm-deployment.run"*) echo "$here/out-deployment" ;;
  *".vm-migrations.run"*) echo "$here/out-migrations" ;;
  *"#packages.x86_64-linux.bitpoll"*) echo /nix/store/pppppppppppppppppppppppppppppppp-bitpoll-0.11.0 ;;
  *"path-info"*) echo '{{"/nix/store/pppppppppppppppppppppppppppppppp-bitpoll-0.11.0":{{"closureSize":{closure}}}}}' ;;
  *) echo "error: unexpected call: $*" >&2; exit 9 ;;
esac"##
    ));
    vm_output(&stand_in.path("out-deployment"), PASSING);
    vm_output(
        &stand_in.path("out-migrations"),
        PASSING.replace("deployment", "migrations").as_str(),
    );
    stand_in
}

#[test]
fn gate_runs_the_suite_with_nixpkgs_overridden_and_compares() {
    let nixpkgs = "github:NixOS/nixpkgs/nixos-unstable";
    let override_args = [
        "--override-input",
        "nixpkgs",
        nixpkgs,
        "--no-write-lock-file",
    ];
    let stand_in = gate_stand_in(400_000_000);
    let saved = stand_in.path("baseline.json");
    stand_in
        .harness(stand_in.dir.path())
        .args(["gate", "--nixpkgs", nixpkgs, "--system", "x86_64-linux"])
        .arg("--save-baseline")
        .arg(&saved)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("baseline written to"))
        .stdout(predicate::str::contains(
            "0 failed step(s), 4 other step(s) and 3 metric(s) recorded; no baseline to compare them with",
        ));
    let mut list = list_checks(".");
    list.splice(5..5, override_args.iter().map(|s| s.to_string()));
    assert_eq!(
        stand_in.calls(),
        vec![
            list,
            build_run(".", "deployment", &override_args),
            build_run(".", "migrations", &override_args),
            nix_call(&[
                "build",
                "-L",
                "--no-link",
                "--print-out-paths",
                "--override-input",
                "nixpkgs",
                nixpkgs,
                "--no-write-lock-file",
                ".#packages.x86_64-linux.bitpoll",
            ]),
            nix_call(&[
                "path-info",
                "--closure-size",
                "--json",
                "/nix/store/pppppppppppppppppppppppppppppppp-bitpoll-0.11.0",
            ]),
        ]
    );
    let baseline: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(baseline["schema_version"], 1);
    assert_eq!(baseline["closure_size_bytes"], 400_000_000u64);
    assert_eq!(
        baseline["steps"]["deployment/the service answers"],
        "passed"
    );
    assert_eq!(
        baseline["metrics"]["deployment/memory_rss_bytes"],
        181_000_000.0
    );
    assert_eq!(
        baseline["source"],
        format!("nixpkgs {nixpkgs} on x86_64-linux")
    );

    // The same suite with a package 15% larger: a regression against the saved baseline.
    let bigger = gate_stand_in(460_000_000);
    bigger
        .harness(bigger.dir.path())
        .args(["gate", "--nixpkgs", nixpkgs, "--system", "x86_64-linux", "--scenario", "deployment"])
        .arg("--baseline")
        .arg(&saved)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "regressions (1):\n  closure_size_bytes: 381.5 MiB -> 438.7 MiB (+57.2 MiB, +15%; +10% at most)\n",
        ))
        // migrations did not run this time: one line, not a regression.
        .stdout(predicate::str::contains(
            "  migrations: not run this time (the baseline has 2 step(s) and 1 metric(s))\n",
        ));
    assert_eq!(bigger.calls().len(), 4);
}

#[test]
fn gate_needs_nixpkgs_or_reports() {
    let stand_in = StandIn::new("exit 9");
    stand_in
        .harness(stand_in.dir.path())
        .args(["gate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--nixpkgs <REF>"));
}

/// The committed baseline is read by this harness, and every step it names exists in the
/// scenario files: a renamed or removed step would otherwise show up as "no longer run" in every
/// gate until someone regenerates the file.
#[test]
fn ci_baseline_matches_the_scenarios() {
    let path = repository().join("ci/baseline.json");
    let baseline = bitpoll_harness::nix::baseline::Baseline::from_json(
        &std::fs::read_to_string(&path).unwrap(),
    )
    .unwrap();
    assert!(!baseline.steps.is_empty());
    for key in baseline.steps.keys().chain(baseline.metrics.keys()) {
        let (scenario, _) = key.split_once('/').unwrap();
        let file = repository().join(format!("scenarios/{scenario}.toml"));
        assert!(
            file.is_file(),
            "ci/baseline.json names the scenario `{scenario}`, which has no scenarios/{scenario}.toml; regenerate the baseline (docs/nix-commands.md)"
        );
    }
    for key in baseline.steps.keys() {
        let (scenario, step) = key.split_once('/').unwrap();
        let parsed = bitpoll_harness::scenario::parse::load(
            &repository().join(format!("scenarios/{scenario}.toml")),
        )
        .unwrap();
        assert!(
            parsed.steps.iter().any(|s| s.name == step),
            "ci/baseline.json has the step `{key}`, which scenarios/{scenario}.toml no longer has; regenerate the baseline (docs/nix-commands.md)"
        );
    }
}
