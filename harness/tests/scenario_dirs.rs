//! Where `list` and `run NAME` find scenarios: from any working directory, the shipped ones;
//! a scenarios/ directory in the working directory, `$BITPOLL_HARNESS_SCENARIOS` and
//! `--scenarios DIR` win in that order of strength; an installed binary finds the scenarios the
//! package puts beside it; an unknown name is answered with the names that exist.

#[path = "support/scenario_dir.rs"]
mod scenario_dir;

use std::path::Path;

use predicates::prelude::*;
use scenario_dir::{harness, ScenarioDir};

const SHIPPED: [&str; 8] = [
    "backup-restore",
    "deployment",
    "faults",
    "hardening",
    "migrations",
    "monitoring",
    "postgresql",
    "upgrade",
];

fn scenario(name: &str) -> String {
    format!(
        "[scenario]\nname = \"{name}\"\nsummary = \"the {name} one\"\n\n[[step]]\nname = \"true\"\nrun = [\"true\"]\n"
    )
}

fn listed_names(output: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(output)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `list` run by `binary` from the root directory, without the variable.
fn listed_from_the_root(binary: &Path) -> Vec<String> {
    let output = std::process::Command::new(binary)
        .current_dir("/")
        .env_remove("BITPOLL_HARNESS_SCENARIOS")
        .arg("list")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    listed_names(&output.stdout)
}

#[test]
fn list_from_the_root_directory_shows_the_eight_shipped_scenarios() {
    let built = assert_cmd::cargo::cargo_bin("bitpoll-harness");
    assert_eq!(listed_from_the_root(&built), SHIPPED);
}

#[test]
fn a_scenarios_directory_here_then_the_variable_then_the_flag_win() {
    let here = ScenarioDir::new();
    std::fs::create_dir(here.path("scenarios")).unwrap();
    std::fs::write(here.path("scenarios/local.toml"), scenario("local")).unwrap();
    let elsewhere = ScenarioDir::new();
    elsewhere.write("variable.toml", &scenario("variable"));
    let flagged = ScenarioDir::new();
    flagged.write("flagged.toml", &scenario("flagged"));

    let list = |variable: Option<&Path>| {
        let mut command = harness();
        command
            .current_dir(here.dir.path())
            .env_remove("BITPOLL_HARNESS_SCENARIOS");
        if let Some(dir) = variable {
            command.env("BITPOLL_HARNESS_SCENARIOS", dir);
        }
        listed_names(&command.arg("list").output().unwrap().stdout)
    };
    assert_eq!(list(None), ["local"]);
    assert_eq!(list(Some(elsewhere.dir.path())), ["variable"]);

    // `run NAME` looks in the same places; --scenarios beats the variable.
    harness()
        .current_dir(here.dir.path())
        .env("BITPOLL_HARNESS_SCENARIOS", elsewhere.dir.path())
        .args(["run", "flagged", "--target", "local", "--scenarios"])
        .arg(flagged.dir.path())
        .assert()
        .code(0)
        .stdout(predicate::str::contains("1 passed, 0 failed, 0 skipped"));
    harness()
        .current_dir(here.dir.path())
        .env("BITPOLL_HARNESS_SCENARIOS", elsewhere.dir.path())
        .args(["run", "variable", "--target", "local"])
        .assert()
        .code(0);
}

#[test]
fn an_installed_binary_finds_the_scenarios_the_package_puts_beside_it() {
    let prefix = ScenarioDir::new();
    std::fs::create_dir_all(prefix.path("bin")).unwrap();
    std::fs::create_dir_all(prefix.path("share/bitpoll-harness/scenarios")).unwrap();
    std::fs::write(
        prefix.path("share/bitpoll-harness/scenarios/installed.toml"),
        scenario("installed"),
    )
    .unwrap();
    let binary = prefix.path("bin/bitpoll-harness");
    std::fs::copy(assert_cmd::cargo::cargo_bin("bitpoll-harness"), &binary).unwrap();
    assert_eq!(listed_from_the_root(&binary), ["installed"]);
}

#[test]
fn an_unknown_scenario_is_answered_with_the_ones_that_exist() {
    let dir = ScenarioDir::new();
    dir.write("alpha.toml", &scenario("alpha"));
    dir.write("beta.toml", &scenario("beta"));
    harness()
        .current_dir("/")
        .args(["run", "gamma", "--target", "local", "--scenarios"])
        .arg(dir.dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no scenario `gamma`"))
        .stderr(predicate::str::contains(format!(
            "the scenarios in {} are: alpha, beta",
            dir.dir.path().display()
        )));
}
