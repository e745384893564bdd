//! Inventories: a complete file read into hosts with the defaults applied, every kind of bad
//! input located exactly (FILE:LINE:COL), `check` telling an inventory from a scenario, and
//! `run --inventory` refusing what would make a host's run meaningless before any host runs.

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use bitpoll_harness::fleet::inventory::HostTarget;
use bitpoll_harness::fleet::inventory_file::parse;
use bitpoll_harness::target::ssh::HostKeyPolicy;

fn problems(text: &str) -> Vec<String> {
    match parse(Path::new("/etc/fleet/hosts.toml"), text) {
        Ok(_) => Vec::new(),
        Err(diagnostics) => diagnostics.0.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts exactly one problem at `position` whose message contains `fragment`.
fn assert_one(text: &str, position: &str, fragment: &str) {
    let found = problems(text);
    assert_eq!(found.len(), 1, "expected one problem, got {found:#?}");
    let prefix = format!("/etc/fleet/hosts.toml:{position}: ");
    assert!(
        found[0].starts_with(&prefix),
        "expected {prefix}..., got {}",
        found[0]
    );
    assert!(
        found[0].contains(fragment),
        "expected {fragment:?} in {}",
        found[0]
    );
}

const HOST: &str = "[[host]]\nname = \"a\"\ntarget = \"local\"\n";

#[test]
fn a_complete_inventory_applies_defaults_and_resolves_paths() {
    let text = r#"
[defaults]
identity = "keys/fleet"
known_hosts = "accept-new"
connect_timeout = "5s"
base_url = "http://127.0.0.1:8080/"
tags = ["all"]
vars.admin = "ops"
vars.shared = "default"

[[host]]
name = "berlin"
target = "ssh://root@berlin.example.org:2222"
tags = ["prod", "eu"]
known_hosts_file = "/var/known"
vars.shared = "berlin"

[[host]]
name = "local-1"
target = "local"
base_url = "https://polls.example.org"
identity = "/abs/key"
"#;
    let inventory = parse(Path::new("/etc/fleet/hosts.toml"), text).expect("parses");
    assert_eq!(inventory.source, "/etc/fleet/hosts.toml");
    let [berlin, local] = &inventory.hosts[..] else {
        panic!("two hosts expected: {:#?}", inventory.hosts)
    };
    let HostTarget::Ssh(address) = &berlin.target else {
        panic!("ssh target expected")
    };
    assert_eq!(
        (address.user.as_str(), address.host.as_str(), address.port),
        ("root", "berlin.example.org", 2222)
    );
    assert_eq!(berlin.base_url.as_deref(), Some("http://127.0.0.1:8080"));
    assert_eq!(berlin.tags, ["prod", "eu"]);
    assert_eq!(
        berlin.identity.as_deref(),
        Some(Path::new("/etc/fleet/keys/fleet"))
    );
    assert_eq!(berlin.known_hosts, Some(HostKeyPolicy::AcceptNew));
    assert_eq!(
        berlin.known_hosts_file.as_deref(),
        Some(Path::new("/var/known"))
    );
    assert_eq!(berlin.connect_timeout, Duration::from_secs(5));
    let vars: Vec<(&str, &str)> = berlin
        .vars
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect();
    assert_eq!(vars, [("admin", "ops"), ("shared", "berlin")]);
    assert!(
        berlin.vars[1]
            .location
            .starts_with("/etc/fleet/hosts.toml:16:6"),
        "{:?}",
        berlin.vars[1]
    );
    assert_eq!(local.target, HostTarget::Local);
    assert_eq!(local.tags, ["all"]);
    assert_eq!(local.base_url.as_deref(), Some("https://polls.example.org"));
    assert_eq!(local.identity.as_deref(), Some(Path::new("/abs/key")));
}

#[test]
fn unknown_keys_are_located_and_list_the_known_ones() {
    assert_one(
        &format!("{HOST}adress = \"x\"\n"),
        "4:1",
        "unknown key `adress` in [[host]] number 1; expected one of: name, target, base_url",
    );
    assert_one(
        &format!("[defaults]\nname = \"x\"\n{HOST}"),
        "2:1",
        "unknown key `name` in [defaults]",
    );
    assert_one(
        &format!("hosts = []\n{HOST}"),
        "1:1",
        "unknown key `hosts` in the inventory",
    );
}

#[test]
fn duplicate_names_point_at_the_second_and_name_the_first() {
    let text = format!("{HOST}\n[[host]]\nname = \"a\"\ntarget = \"local\"\n");
    assert_one(
        &text,
        "6:8",
        "host `a` is named twice (first at /etc/fleet/hosts.toml:2:8)",
    );
}

#[test]
fn bad_targets_urls_and_values_are_located() {
    assert_one(
        "[[host]]\nname = \"a\"\ntarget = \"ssh://host\"\n",
        "3:10",
        "`target`: target `ssh://host` has no user",
    );
    assert_one(
        "[[host]]\nname = \"a\"\ntarget = \"ssh://root@h:99999\"\n",
        "3:10",
        "port `99999` is not a number",
    );
    assert_one(
        &format!("{HOST}base_url = \"localhost:8080\"\n"),
        "4:12",
        "base_url `localhost:8080`",
    );
    assert_one(
        &format!("{HOST}base_url = \"ftp://h\"\n"),
        "4:12",
        "must be an http:// or https:// URL",
    );
    assert_one(
        &format!("{HOST}known_hosts = \"yes\"\n"),
        "4:15",
        "expected `strict` or `accept-new`",
    );
    assert_one(
        &format!("{HOST}connect_timeout = \"soon\"\n"),
        "4:19",
        "`connect_timeout`",
    );
    assert_one(
        &format!("{HOST}tags = \"prod\"\n"),
        "4:8",
        "`tags` must be an array of strings, found a string",
    );
    assert_one(
        &format!("{HOST}tags = [\"a b\"]\n"),
        "4:9",
        "tag `a b` must be letters",
    );
    assert_one(
        &format!("{HOST}vars.n = 3\n"),
        "4:10",
        "vars: `n` must be a string",
    );
    assert_one(
        "[[host]]\nname = \"has space\"\ntarget = \"local\"\n",
        "2:8",
        "host name `has space`",
    );
}

#[test]
fn missing_hosts_names_and_targets_say_what_to_add() {
    assert_one(
        "[defaults]\nidentity = \"k\"\n",
        "1:1",
        "the inventory has no hosts; add a [[host]] table",
    );
    assert_one(
        "[[host]]\ntarget = \"local\"\n",
        "1:1",
        "[[host]] number 1 has no `name`",
    );
    assert_one(
        "[[host]]\nname = \"a\"\n",
        "1:1",
        "[[host]] number 1 has no `target`",
    );
    assert_one("host = 1\n", "1:8", "`host` must be an array of tables");
    assert_one("[[host]\n", "1:7", "invalid TOML");
}

#[test]
fn names_differing_only_in_case_are_the_same_name() {
    let text = format!("{HOST}\n[[host]]\nname = \"A\"\ntarget = \"local\"\n");
    assert_one(
        &text,
        "6:8",
        "host `A` is named twice (differing only in case from `a`)",
    );
}

#[test]
fn a_default_tag_named_like_a_host_is_ambiguous() {
    assert_one(
        &format!("[defaults]\ntags = [\"a\"]\n{HOST}"),
        "2:9",
        "tag `a` is also a host's name",
    );
}

#[test]
fn a_tag_named_like_a_host_is_ambiguous() {
    let text = format!("{HOST}\n[[host]]\nname = \"b\"\ntarget = \"local\"\ntags = [\"a\"]\n");
    assert_one(&text, "8:9", "tag `a` is also a host's name");
}

#[test]
fn all_problems_of_a_file_are_reported_at_once_in_order() {
    let text = "[[host]]\nname = \"a\"\ntarget = \"nowhere\"\nbase_url = \"x\"\n\n[[host]]\nname = \"a\"\ntarget = \"local\"\n";
    let found = problems(text);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].contains(":3:10: `target`"), "{found:#?}");
    assert!(found[1].contains(":4:12: base_url `x`"), "{found:#?}");
    assert!(
        found[2].contains(":7:8: host `a` is named twice"),
        "{found:#?}"
    );
}

fn harness() -> Command {
    Command::cargo_bin("bitpoll-harness").expect("the harness binary")
}

#[test]
fn check_validates_inventories_beside_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("fleet.toml");
    std::fs::write(
        &good,
        format!("{HOST}\n[[host]]\nname = \"b\"\ntarget = \"local\"\n"),
    )
    .unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, format!("{HOST}colour = 1\n")).unwrap();
    let output = harness()
        .arg("check")
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains("fleet.toml: ok (inventory of 2 hosts)"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("{}:4:1: unknown key `colour`", bad.display())),
        "{stderr}"
    );
}

/// A scenario with http steps and [vars] `greeting`, for the checks made before any host runs.
fn scenario_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hello.toml"),
        "[scenario]\nname = \"hello\"\nsummary = \"s\"\n[vars]\ngreeting = \"hi\"\n[[step]]\nname = \"front\"\nhttp = \"/\"\n",
    )
    .unwrap();
    dir
}

#[test]
fn run_refuses_hosts_without_base_url_and_undeclared_vars_before_running() {
    let dir = scenario_dir();
    let inventory = dir.path().join("fleet.toml");
    std::fs::write(
        &inventory,
        "[[host]]\nname = \"a\"\ntarget = \"local\"\nvars.colour = \"red\"\n\n[[host]]\nname = \"b\"\ntarget = \"local\"\nbase_url = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let output = harness()
        .args(["run", "hello", "--scenarios"])
        .arg(dir.path())
        .arg("--inventory")
        .arg(&inventory)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("host `a` has no base_url, but scenario `hello` has http steps"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}:4:6: vars `colour` (host `a`): no scenario declares it in [vars] (neither of this run nor in the scenario directory)",
            inventory.display()
        )),
        "{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "nothing ran: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn run_refuses_unknown_host_selections_and_fleet_flags_without_inventory() {
    let dir = scenario_dir();
    let inventory = dir.path().join("fleet.toml");
    std::fs::write(
        &inventory,
        format!("{HOST}base_url = \"http://127.0.0.1:9\"\ntags = [\"prod\"]\n"),
    )
    .unwrap();
    let output = harness()
        .args(["run", "hello", "--scenarios"])
        .arg(dir.path())
        .arg("--inventory")
        .arg(&inventory)
        .args(["--hosts", "prod,paris"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--hosts: no host or tag `paris`"),
        "{stderr}"
    );
    assert!(stderr.contains("hosts: a; tags: prod"), "{stderr}");

    let output = harness()
        .args(["run", "hello", "--scenarios"])
        .arg(dir.path())
        .args([
            "--target",
            "local",
            "--base-url",
            "http://127.0.0.1:9",
            "--parallel",
            "2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("pass --inventory FILE or --inventory-from-flake REF"),
        "{stderr}"
    );
}
