//! `validate` (the parse check runs the real `nix-instantiate`, the hardening score the real
//! `systemd-analyze`)
//! against a stand-in `nix` that records its arguments and prints canned outputs (store paths of
//! directories prepared here, holding real reports of the harness): every command the harness
//! would run is checked argument by argument. Nix cannot build a VM here, so nothing real is
//! built.
#[path = "support/nix_standin.rs"]
mod nix_standin;
#[path = "support/nix_suite.rs"]
mod nix_suite;

use std::path::{Path, PathBuf};

use nix_standin::{nix_call, vm_output, write_executable, StandIn, FAILING, PASSING};
use nix_suite::repository;
use predicates::prelude::*;

/// A configuration file; the stand-in's directory doubles as the flake (`--flake DIR`).
fn config(stand_in: &StandIn, text: &str) -> PathBuf {
    let path = stand_in.path("bitpoll.nix");
    std::fs::write(&path, text).unwrap();
    path
}

const CONFIG: &str = r#"{ ... }: {
  services.bitpoll = {
    enable = true;
    baseUrl = "https://poll.example.org";
  };
}
"#;

#[test]
fn validate_reports_a_syntax_error_with_file_line_and_column() {
    // The real nix-instantiate parses; nix itself must not be called.
    let stand_in = StandIn::new("exit 9");
    let file = config(
        &stand_in,
        "{\n  services.bitpoll = {\n    enable = true\n  };\n}\n",
    );
    stand_in
        .harness(stand_in.dir.path())
        .args(["validate", "--config", "bitpoll.nix", "--eval-only"])
        .assert()
        .code(2)
        .stderr("error: bitpoll.nix:4:3: syntax error, unexpected '}', expecting ';'\n");
    assert!(stand_in.calls().is_empty());
    assert!(file.is_file());
}

#[test]
fn validate_of_a_missing_file_names_it() {
    let stand_in = StandIn::new("exit 9");
    stand_in
        .harness(stand_in.dir.path())
        .args(["validate", "--config", "nowhere.nix"])
        .assert()
        .code(2)
        .stderr(
            "error: --config nowhere.nix: no such file; give the NixOS module that configures services.bitpoll\n",
        );
}

fn rendered_unit(name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(repository().join("ci/render-units"))
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("ci/render-units runs");
    assert!(status.success());
    std::fs::read_to_string(dir.path().join(name)).unwrap()
}

const PACKAGE_DRV: &str = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-bitpoll-0.11.0.drv";
const SETTINGS_DRV: &str = "/nix/store/ssssssssssssssssssssssssssssssss-bitpoll-settings.json.drv";

/// A stand-in for `validate --eval-only`: `eval` prints `inspection`, the builds print the
/// package (whose bitpoll-manage records what it was given) and the settings file.
fn eval_only_stand_in(inspection: serde_json::Value) -> StandIn {
    let stand_in = StandIn::new(&format!(
        r#"case "$*" in
  *inspectConfiguration*) cat "$here/inspection.json" ;;
  *"{PACKAGE_DRV}^out"*) echo "$here/package" ;;
  *"{SETTINGS_DRV}^out"*) echo "$here/settings.json" ;;
  *) echo "error: unexpected call: $*" >&2; exit 9 ;;
esac"#
    ));
    std::fs::write(stand_in.path("inspection.json"), inspection.to_string()).unwrap();
    std::fs::write(stand_in.path("settings.json"), "{}").unwrap();
    std::fs::create_dir_all(stand_in.path("package/bin")).unwrap();
    let record = stand_in.path("manage-record");
    write_executable(
        &stand_in.path("package/bin/bitpoll-manage"),
        &format!(
            r#"#!/bin/sh
{{
  echo "args=$*"
  echo "settings=$BITPOLL_SETTINGS_FILE"
  echo "state entries=$(ls -A "$BITPOLL_STATE_DIR" | wc -l)"
  for name in secret_key encryption_key db_password; do
    echo "$name $(stat -c %a "$CREDENTIALS_DIRECTORY/$name") $(wc -c < "$CREDENTIALS_DIRECTORY/$name")"
  done
}} > '{}'
echo "System check identified some issues:" >&2
echo "?: (security.W004) You have not set a value for the SECURE_HSTS_SECONDS setting." >&2
echo "System check identified 1 issue (0 silenced)."
"#,
            record.display()
        ),
    );
    stand_in
}

fn inspection(assertions: &[&str], service_unit: &str) -> serde_json::Value {
    serde_json::json!({
        "assertions": assertions,
        "warnings": ["services.bitpoll.outboundAddresses is empty: calendar imports are off"],
        "units": {
            "bitpoll.service": service_unit,
            "bitpoll.socket": "[Socket]\nListenStream=127.0.0.1:8080\n",
            "bitpoll-clearsessions.service": rendered_unit("bitpoll-clearsessions.service"),
        },
        "settingsFile": { "path": "/nix/store/x-bitpoll-settings.json", "drvPath": SETTINGS_DRV },
        "package": { "path": "/nix/store/y-bitpoll-0.11.0", "drvPath": PACKAGE_DRV, "name": "bitpoll-0.11.0" },
    })
}

fn inspect_call(flake: &Path, file: &Path) -> Vec<String> {
    nix_call(&[
        "eval",
        "--json",
        "--impure",
        "--expr",
        &format!(
            "(builtins.getFlake \"{}\").lib.inspectConfiguration {{ system = \"x86_64-linux\"; module = /. + \"{}\"; }}",
            flake.display(),
            file.display()
        ),
    ])
}

#[test]
fn validate_eval_only_scores_the_units_and_runs_the_deploy_checks() {
    let stand_in = eval_only_stand_in(inspection(&[], &rendered_unit("bitpoll.service")));
    let file = config(&stand_in, CONFIG);
    let flake = stand_in.dir.path().canonicalize().unwrap();
    stand_in
        .harness(stand_in.dir.path())
        .args(["validate", "--config", "bitpoll.nix", "--eval-only", "--system", "x86_64-linux"])
        .arg("--flake")
        .arg(&flake)
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "warning: services.bitpoll.outboundAddresses is empty: calendar imports are off\nevaluation: ok (1 warning(s))\n",
        ))
        .stdout(predicate::str::contains(
            "ok   hardening: bitpoll.service: exposure 0.2 (budget 1.0)",
        ))
        .stdout(predicate::str::contains("ok   hardening: bitpoll-clearsessions.service: exposure"))
        .stdout(predicate::str::contains("hardening: bitpoll.socket").not())
        .stdout(predicate::str::contains(
            "  ?: (security.W004) You have not set a value for the SECURE_HSTS_SECONDS setting.",
        ))
        .stdout(predicate::str::contains("ok   django: check --deploy found no errors"));
    assert_eq!(
        stand_in.calls(),
        vec![
            inspect_call(&flake, &file.canonicalize().unwrap()),
            nix_call(&[
                "build",
                "--no-link",
                "--print-out-paths",
                &format!("{PACKAGE_DRV}^out")
            ]),
            nix_call(&[
                "build",
                "--no-link",
                "--print-out-paths",
                &format!("{SETTINGS_DRV}^out")
            ]),
        ]
    );
    // The settings file as built, an empty state directory, and throwaway secrets of the
    // right form, readable by their owner only.
    let record = std::fs::read_to_string(stand_in.path("manage-record")).unwrap();
    assert_eq!(
        record,
        format!(
            "args=check --deploy\nsettings={}\nstate entries=0\nsecret_key 600 64\nencryption_key 600 44\ndb_password 600 64\n",
            stand_in.path("settings.json").display()
        )
    );
}

#[test]
fn validate_eval_only_shows_failed_assertions_as_nixos_does() {
    let message = "services.bitpoll.secretKeyFile points into the Nix store (/nix/store/k), which every local user can read: keep the secret outside the store";
    let stand_in = eval_only_stand_in(inspection(&[message], "[Service]\n"));
    config(&stand_in, CONFIG);
    stand_in
        .harness(stand_in.dir.path())
        .args([
            "validate",
            "--config",
            "bitpoll.nix",
            "--eval-only",
            "--system",
            "x86_64-linux",
        ])
        .arg("--flake")
        .arg(stand_in.dir.path())
        .assert()
        .code(2)
        .stdout(predicate::str::contains(format!(
            "Failed assertions:\n- {message}\n"
        )))
        .stderr(predicate::str::contains("1 failed assertion(s)"));
    // Nothing is built for a configuration NixOS would refuse.
    assert_eq!(stand_in.calls().len(), 1);
}

#[test]
fn validate_eval_only_fails_a_unit_above_the_hardening_budget() {
    let weak: String = rendered_unit("bitpoll.service")
        .lines()
        .filter(|line| {
            ![
                "PrivateNetwork=",
                "NoNewPrivileges=",
                "ProtectSystem=",
                "PrivateUsers=",
            ]
            .iter()
            .any(|directive| line.starts_with(directive))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let stand_in = eval_only_stand_in(inspection(&[], &weak));
    config(&stand_in, CONFIG);
    stand_in
        .harness(stand_in.dir.path())
        .args(["validate", "--config", "bitpoll.nix", "--eval-only", "--system", "x86_64-linux"])
        .arg("--flake")
        .arg(stand_in.dir.path())
        .assert()
        .code(1)
        .stdout(predicate::str::is_match(
            r"FAIL hardening: bitpoll.service: exposure [0-9.]+ is above the budget 1.0; costs most: PrivateNetwork= 0.5 \(Service has access to the host's network\)",
        )
        .unwrap());
}

#[test]
fn validate_eval_only_keeps_nixs_error_and_names_the_option() {
    let stand_in = StandIn::new(
        r#"echo "error: The option \`services.bitpoll.listenAdress' does not exist. Definition values:" >&2
echo "       - In \`/etc/nixos/bitpoll.nix': \"0.0.0.0\"" >&2
exit 1"#,
    );
    let file = config(&stand_in, CONFIG);
    stand_in
        .harness(stand_in.dir.path())
        .args(["validate", "--config", "bitpoll.nix", "--eval-only", "--system", "x86_64-linux"])
        .arg("--flake")
        .arg(stand_in.dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "error: The option `services.bitpoll.listenAdress' does not exist. Definition values:\n       - In `/etc/nixos/bitpoll.nix': \"0.0.0.0\"\n",
        ))
        .stderr(predicate::str::contains(format!(
            "hint: {} sets services.bitpoll.listenAdress, which no module declares",
            file.canonicalize().unwrap().display()
        )));
}

#[test]
fn validate_in_vms_builds_one_validation_test_per_scenario() {
    let stand_in = StandIn::new(
        r#"case "$*" in
  *"builtins.attrNames"*) echo '["vm-deployment","vm-migrations"]' ;;
  *'"vm-deployment".run'*) echo "$here/out-deployment" ;;
  *'"vm-migrations".run'*) echo "$here/out-migrations" ;;
  *) echo "error: unexpected call: $*" >&2; exit 9 ;;
esac"#,
    );
    vm_output(&stand_in.path("out-deployment"), PASSING);
    vm_output(&stand_in.path("out-migrations"), FAILING);
    let file = config(&stand_in, CONFIG).canonicalize().unwrap();
    let flake = stand_in.dir.path().canonicalize().unwrap();
    stand_in
        .harness(stand_in.dir.path())
        .args([
            "validate",
            "--config",
            "bitpoll.nix",
            "--system",
            "x86_64-linux",
        ])
        .arg("--flake")
        .arg(&flake)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("  PASS  the service answers"))
        .stdout(predicate::str::ends_with("3 passed, 1 failed, 0 skipped\n"));
    let arguments = format!(
        "{{ system = \"x86_64-linux\"; module = /. + \"{}\";",
        file.display()
    );
    let get_flake = format!("(builtins.getFlake \"{}\")", flake.display());
    let build = |scenario: &str| {
        nix_call(&[
            "build",
            "-L",
            "--no-link",
            "--print-out-paths",
            "--impure",
            "--expr",
            &format!(
                "({get_flake}.lib.mkValidationTest {arguments} scenarios = [ \"{scenario}\" ]; }}).\"vm-{scenario}\".run"
            ),
        ])
    };
    assert_eq!(
        stand_in.calls(),
        vec![
            nix_call(&[
                "eval",
                "--json",
                "--impure",
                "--expr",
                &format!("builtins.attrNames ({get_flake}.lib.mkValidationTest {arguments} }})"),
            ]),
            // Every scenario runs, also after one failed.
            build("deployment"),
            build("migrations"),
        ]
    );

    // Named scenarios need no listing.
    let stand_in_named = StandIn::new(r#"echo "$here/out-deployment""#);
    vm_output(&stand_in_named.path("out-deployment"), PASSING);
    config(&stand_in_named, CONFIG);
    stand_in_named
        .harness(stand_in_named.dir.path())
        .args([
            "validate",
            "--config",
            "bitpoll.nix",
            "--scenario",
            "deployment",
        ])
        .args([
            "--system",
            "x86_64-linux",
            "--flake",
            "github:OWNER/bitpoll-nix",
        ])
        .assert()
        .code(0);
    let calls = stand_in_named.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0]
        .last()
        .unwrap()
        .starts_with("((builtins.getFlake \"github:OWNER/bitpoll-nix\").lib.mkValidationTest"));
}
