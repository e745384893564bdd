//! `run --inventory-from-flake REF`: harness/src/fleet/flake_hosts.nix evaluated by real Nix on
//! plain attribute sets shaped like a flake's nixosConfigurations, colmenaHive and deploy
//! outputs (and, where Nix can copy a flake into its store, on a real flake holding them);
//! and the flake path against a stand-in `nix`: its one command argument by argument, its
//! canned output turned into hosts, and every problem worded.
//!
//! The real-Nix tests need nix-instantiate (ci/install.d/20-nix-tools.sh) and are ignored with
//! the reason otherwise.

#[path = "support/nix_standin.rs"]
mod nix_standin;

use std::sync::Mutex;

use bitpoll_harness::fleet::flake_hosts::{self, HOSTS_EXPRESSION};
use bitpoll_harness::fleet::inventory::{Host, HostTarget, Inventory, DEFAULT_CONNECT_TIMEOUT};
use bitpoll_harness::nix::Nix;
use bitpoll_harness::target::ssh::SshAddress;
use libtest_mimic::{Arguments, Failed, Trial};
use nix_standin::{nix_call, StandIn, PASSING};
use serde_json::json;

/// The harness finds `nix` on PATH; tests that change PATH, or need it unchanged, hold this.
static PATH_LOCK: Mutex<()> = Mutex::new(());

/// A flake's outputs as plain attributes: colmena nodes (one also a NixOS configuration),
/// deploy-rs nodes, a host reached by its fqdn, one by its host name (fqdn throws as NixOS's
/// does without a domain), one with no target at all, and configurations that do not enable
/// Bitpoll. `abort`, which tryEval does not catch, marks what must never be evaluated.
const OUTPUTS: &str = r#"
let
  bitpoll = baseUrl: { services.bitpoll = { enable = true; inherit baseUrl; }; };
  noFqdn = throw "The FQDN is required but cannot be determined";
in
{
  colmena = { };
  colmenaHive = {
    __schema = "v0.5";
    nodes.berlin.config = bitpoll "https://polls.berlin.example.org/" // {
      deployment = { targetHost = "berlin.example.org"; targetUser = "ops"; targetPort = 2222; tags = [ "prod" "eu" ]; };
      networking.fqdn = abort "colmena's targetHost comes first";
    };
    nodes.paris.config = bitpoll "http://paris.example.org:8080" // {
      deployment = { targetHost = "10.0.0.2"; targetUser = null; targetPort = null; tags = [ ]; };
    };
  };
  nixosConfigurations = {
    berlin.config = abort "the colmena node of the same name is read";
    oslo.config = bitpoll "https://oslo.example.org" // { networking = { hostName = "oslo"; domain = null; fqdn = noFqdn; }; };
    rome.config = bitpoll "https://rome.example.org" // { networking.fqdn = "rome.example.org"; };
    lima.config = bitpoll "https://lima.example.org" // { networking = { hostName = "lima"; domain = null; fqdn = noFqdn; }; };
    void.config = bitpoll "https://void.example.org" // { networking = { hostName = ""; domain = null; fqdn = noFqdn; }; };
    kiel.config = bitpoll "https://kiel.example.org" // { networking = { hostName = "kiel"; domain = null; fqdn = noFqdn; }; };
    mail.config.services.bitpoll.enable = false;
    dns.config = { networking.hostName = "dns"; };
  };
  deploy = {
    sshUser = "deployer";
    sshOpts = [ "-p" "2200" ];
    nodes.oslo = { hostname = "oslo.example.net"; sshOpts = [ "-v" "-p2022" ]; profiles.system.path = abort "a derivation"; };
    nodes.lima = { hostname = "lima.example.net"; profiles.system = { sshUser = "admin"; path = abort "a derivation"; }; };
    nodes.nowhere.hostname = "nowhere.example.net";
  };
}
"#;

/// What flake_hosts.nix returns for OUTPUTS, one host a line.
const FACTS: &str = r#"{ "disabled": ["dns", "mail"], "broken": [], "hosts": [
{"name": "berlin", "source": "colmenaHive", "baseUrl": "https://polls.berlin.example.org/", "tags": ["prod", "eu"], "target": {"host": "berlin.example.org", "from": "deployment.targetHost", "user": "ops", "port": 2222}},
{"name": "kiel", "source": "nixosConfigurations", "baseUrl": "https://kiel.example.org", "tags": [], "target": {"host": "kiel", "from": "networking.hostName", "user": null, "port": null}},
{"name": "lima", "source": "nixosConfigurations", "baseUrl": "https://lima.example.org", "tags": [], "target": {"host": "lima.example.net", "from": "deploy.nodes.lima.hostname", "user": "admin", "port": "2200"}},
{"name": "oslo", "source": "nixosConfigurations", "baseUrl": "https://oslo.example.org", "tags": [], "target": {"host": "oslo.example.net", "from": "deploy.nodes.oslo.hostname", "user": "deployer", "port": "2022"}},
{"name": "paris", "source": "colmenaHive", "baseUrl": "http://paris.example.org:8080", "tags": [], "target": {"host": "10.0.0.2", "from": "deployment.targetHost", "user": null, "port": null}},
{"name": "rome", "source": "nixosConfigurations", "baseUrl": "https://rome.example.org", "tags": [], "target": {"host": "rome.example.org", "from": "networking.fqdn", "user": null, "port": null}},
{"name": "void", "source": "nixosConfigurations", "baseUrl": "https://void.example.org", "tags": [], "target": {"host": null, "from": null, "user": null, "port": null}}
], "present": {"nixosConfigurations": true, "colmenaHive": true, "colmena": true, "deploy": true} }"#;

fn expected_facts() -> serde_json::Value {
    serde_json::from_str(FACTS).expect("FACTS is JSON")
}

/// The file under test, applied by `instantiate` to the outputs given.
const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/fleet/flake_hosts.nix");

fn instantiate(outputs: &str) -> Result<serde_json::Value, Failed> {
    let expression = format!("import {FILE} ({outputs})");
    let output = std::process::Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "--expr", &expression])
        .output()
        .map_err(|e| format!("cannot run nix-instantiate: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned().into());
    }
    Ok(serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?)
}

fn hosts_of_plain_outputs() -> Result<(), Failed> {
    let facts = instantiate(OUTPUTS)?;
    assert_eq!(facts, expected_facts());
    Ok(())
}

fn broken_and_missing_outputs_are_reported() -> Result<(), Failed> {
    let outputs = r#"{
      colmenaHive.nodes.x.config.services.bitpoll.enable = throw "a module failed";
      nixosConfigurations.y.config.services.bitpoll.enable = false;
    }"#;
    let facts = instantiate(outputs)?;
    let expected = json!({
        "hosts": [],
        "disabled": ["y"],
        "broken": ["colmenaHive.nodes.x.config.services.bitpoll.enable"],
        "present": { "nixosConfigurations": true, "colmenaHive": true, "colmena": false, "deploy": false },
    });
    assert_eq!(facts, expected);
    let facts = instantiate("{ }")?;
    assert_eq!(facts["hosts"], json!([]));
    assert_eq!(facts["present"]["nixosConfigurations"], json!(false));
    Ok(())
}

/// OUTPUTS, void given an fqdn, as a real flake read by real `nix eval`: the hosts of HOSTS.
fn a_real_flake_gives_the_hosts() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let outputs = OUTPUTS.replace(
        "networking = { hostName = \"\"; domain = null; fqdn = noFqdn; };",
        "networking.fqdn = \"void.example.org\";",
    );
    std::fs::write(
        dir.path().join("flake.nix"),
        format!("{{ outputs = {{ self }}: {outputs}; }}\n"),
    )
    .map_err(|e| e.to_string())?;
    let _path = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let inventory = flake_hosts::inventory(&Nix::default(), dir.path().to_str().unwrap())
        .map_err(|e| format!("{e:#}"))?;
    let expected: Vec<Host> = HOSTS.trim().lines().map(host).collect();
    assert_eq!(inventory.hosts, expected);
    Ok(())
}

/// `inventory` of `flake` with a stand-in `nix` running `body`, first on PATH meanwhile.
fn with_stand_in(flake: &str, body: &str) -> (StandIn, anyhow::Result<Inventory>) {
    let stand_in = StandIn::new(body);
    let _path = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let saved = std::env::var_os("PATH");
    std::env::set_var("PATH", stand_in.search_path());
    let result = flake_hosts::inventory(&Nix::default(), flake);
    match saved {
        Some(path) => std::env::set_var("PATH", path),
        None => std::env::remove_var("PATH"),
    }
    (stand_in, result)
}

/// The stand-in's calls: StandIn::calls reads one call a line, but the expression spans lines.
/// Each argument ends with \x1f and each call with a newline, and no argument ends with \x1f.
fn calls(stand_in: &StandIn) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(stand_in.path("calls")).unwrap_or_default();
    text.split_terminator("\u{1f}\n")
        .map(|call| call.split('\u{1f}').map(String::from).collect())
        .collect()
}

fn canned(facts: &serde_json::Value) -> String {
    format!("cat <<'EOF'\n{facts}\nEOF")
}

/// The one command: `nix eval --json --impure --expr`, flake_hosts.nix applied to getFlake of
/// the reference as a string literal.
fn eval_call(reference: &str) -> Vec<String> {
    let expression = format!("({HOSTS_EXPRESSION}) (builtins.getFlake {reference})");
    nix_call(&["eval", "--json", "--impure", "--expr", &expression])
}

/// A host as flake_hosts.rs builds it from a line `NAME USER@HOST:PORT BASE_URL [TAG,...]`.
fn host(line: &str) -> Host {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let target = SshAddress::parse(&format!("ssh://{}", fields[1])).expect("a target");
    Host {
        name: fields[0].into(),
        target: HostTarget::Ssh(target),
        base_url: Some(fields[2].into()),
        tags: fields
            .get(3)
            .map_or(vec![], |t| t.split(',').map(String::from).collect()),
        identity: None,
        known_hosts: None,
        known_hosts_file: None,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        vars: Vec::new(),
    }
}

/// FACTS as hosts: the base URL without its trailing `/`, root and port 22 by default, deploy-rs'
/// port from its sshOpts; void, given a host name and an empty user here.
const HOSTS: &str = "
berlin ops@berlin.example.org:2222 https://polls.berlin.example.org prod,eu
kiel root@kiel:22 https://kiel.example.org
lima admin@lima.example.net:2200 https://lima.example.org
oslo deployer@oslo.example.net:2022 https://oslo.example.org
paris root@10.0.0.2:22 http://paris.example.org:8080
rome root@rome.example.org:22 https://rome.example.org
void root@void.example.org:22 https://void.example.org";

fn the_flake_is_evaluated_once_and_read_into_hosts() -> Result<(), Failed> {
    let dir = tempfile::tempdir().unwrap();
    let mut facts = expected_facts();
    facts["hosts"][6]["target"] = json!({ "host": "void.example.org", "from": "networking.hostName", "user": "", "port": null });
    let (stand_in, result) = with_stand_in(dir.path().to_str().unwrap(), &canned(&facts));
    let absolute = dir.path().canonicalize().unwrap().display().to_string();
    assert_eq!(calls(&stand_in), [eval_call(&format!("\"{absolute}\""))]);
    let inventory = result.map_err(|e| format!("{e:#}"))?;
    assert_eq!(inventory.source, format!("flake {}", dir.path().display()));
    let expected: Vec<Host> = HOSTS.trim().lines().map(host).collect();
    assert_eq!(inventory.hosts, expected);
    Ok(())
}

fn a_remote_reference_is_a_string_literal_not_code() -> Result<(), Failed> {
    let reference = r#"github:owner/fleet?dir=a"b${c}\d"#;
    let (stand_in, _) = with_stand_in(reference, "exit 1");
    assert_eq!(
        calls(&stand_in),
        [eval_call(r#""github:owner/fleet?dir=a\"b\${c}\\d""#)]
    );
    Ok(())
}

/// Hosts with every problem flake_hosts.rs finds; `self`'s base URL is fine (it and its target
/// are both this machine), its tag is not.
const BAD_HOSTS: &str = r#"[
{"name": "void", "source": "nixosConfigurations", "baseUrl": "https://void.example.org", "tags": [], "target": {"host": null, "from": null, "user": null, "port": null}},
{"name": "far", "source": "colmenaHive", "baseUrl": "https://far.example.org", "tags": [], "target": {"host": "far.example.org", "from": "deploy.nodes.far.hostname", "user": null, "port": "22x"}},
{"name": "near", "source": "colmenaHive", "baseUrl": "https://near.example.org", "tags": [], "target": {"host": "near.example.org", "from": "deployment.targetHost", "user": null, "port": 70000}},
{"name": "loop", "source": "colmenaHive", "baseUrl": "http://localhost:8080", "tags": [], "target": {"host": "loop.example.org", "from": "deployment.targetHost", "user": null, "port": null}},
{"name": "self", "source": "colmenaHive", "baseUrl": "http://[::1]:8080", "tags": ["self"], "target": {"host": "127.0.0.1", "from": "deployment.targetHost", "user": null, "port": null}},
{"name": "a b", "source": "nixosConfigurations", "baseUrl": "ftp://ab.example.org", "tags": ["x y"], "target": {"host": "ab.example.org", "from": "networking.fqdn", "user": null, "port": null}}
]"#;

/// The error for canned facts.
fn error_for(facts: serde_json::Value) -> String {
    let (_, result) = with_stand_in("github:owner/fleet", &canned(&facts));
    format!("{:#}", result.expect_err("an error"))
}

fn every_problem_is_worded() -> Result<(), Failed> {
    let present = |hive: bool, colmena: bool| json!({ "nixosConfigurations": true, "colmenaHive": hive, "colmena": colmena, "deploy": false });
    let nothing = error_for(
        json!({ "hosts": [], "disabled": ["mail", "dns"], "broken": [], "present": present(false, true) }),
    );
    assert_eq!(nothing, "no configuration of github:owner/fleet enables services.bitpoll; its configurations mail, dns import the module without services.bitpoll.enable = true, or do not import it; its `colmena` output is a hive only colmena evaluates: expose `colmenaHive = colmena.lib.makeHive self.outputs.colmena;` as colmena's README says");
    let no_outputs = json!({ "hosts": [], "disabled": [], "broken": [],
        "present": { "nixosConfigurations": false, "colmenaHive": false, "colmena": false, "deploy": true } });
    assert_eq!(error_for(no_outputs), "no configuration of github:owner/fleet enables services.bitpoll; it has no nixosConfigurations or colmenaHive output");
    let broken = error_for(
        json!({ "hosts": [], "disabled": [], "broken": ["nixosConfigurations.x.config.services.bitpoll.enable"], "present": present(false, false) }),
    );
    assert_eq!(broken, "flake github:owner/fleet: cannot evaluate nixosConfigurations.x.config.services.bitpoll.enable; run `nix eval github:owner/fleet#ATTRIBUTE --show-trace` with it to see why");

    let hosts: serde_json::Value = serde_json::from_str(BAD_HOSTS).expect("BAD_HOSTS is JSON");
    let problems = error_for(
        json!({ "hosts": hosts, "disabled": [], "broken": [], "present": present(true, false) }),
    );
    let expected = [
        "flake github:owner/fleet: host `void`: no SSH target: set deployment.targetHost, deploy.nodes.void.hostname or networking.domain",
        "flake github:owner/fleet: host `far`: the SSH port `22x` (beside deploy.nodes.far.hostname) is not a number from 1 to 65535",
        "flake github:owner/fleet: host `near`: the SSH port `70000` (beside deployment.targetHost) is not a number from 1 to 65535",
        "flake github:owner/fleet: host `loop`: services.bitpoll.baseUrl `http://localhost:8080` names the machine the harness runs on, not loop.example.org, so its http steps would test the wrong server; set services.bitpoll.baseUrl (or allowedHosts, or nginx.hostName) to the URL people reach it at",
        "flake github:owner/fleet: nixosConfigurations.a b: host name `a b` must be letters, digits, `-`, `_` or `.` (it names the host in --hosts, reports and JUnit)",
        "flake github:owner/fleet: host `a b`: deployment.tags: tag `x y` must be letters, digits, `-`, `_` or `.` (it names the host in --hosts, reports and JUnit)",
        "flake github:owner/fleet: host `a b`: services.bitpoll.baseUrl: base_url `ftp://ab.example.org` must be an http:// or https:// URL with a host",
        "flake github:owner/fleet: host `self`: tag `self` is also a host's name; --hosts could not tell them apart, so rename one",
    ];
    assert_eq!(problems.lines().collect::<Vec<_>>(), expected);
    Ok(())
}

fn nix_failures_and_bad_references_are_worded() -> Result<(), Failed> {
    let dir = tempfile::tempdir().unwrap();
    let flake = dir.path().to_str().unwrap();
    let not_flake = "echo \"error: getting status of '/nix/store/x-source/flake.nix': No such file or directory\" >&2; exit 1";
    let (_, result) = with_stand_in(flake, not_flake);
    assert_eq!(
        format!("{:#}", result.unwrap_err()),
        format!("--inventory-from-flake {flake}: {flake} is not a flake (it has no flake.nix):\nerror: getting status of '/nix/store/x-source/flake.nix': No such file or directory")
    );
    let (_, result) = with_stand_in(
        flake,
        "echo 'building' >&2; echo 'error: attribute baseUrl missing' >&2; exit 1",
    );
    assert_eq!(
        format!("{:#}", result.unwrap_err()),
        format!("--inventory-from-flake {flake}: cannot read the flake's configurations:\nerror: attribute baseUrl missing")
    );
    let starts = |body: &str, start: &str| {
        let message = format!("{:#}", with_stand_in(flake, body).1.unwrap_err());
        assert!(message.starts_with(start), "{message}");
    };
    starts(
        "echo 'not json'",
        &format!("--inventory-from-flake {flake}: nix eval printed not JSON: "),
    );
    let shape = "nix printed hosts in a shape the harness cannot read (invalid type: integer `3`";
    starts(
        "echo '{\"hosts\": 3}'",
        &format!("--inventory-from-flake {flake}: {shape}"),
    );

    let (stand_in, result) = with_stand_in(".#colmenaHive", "exit 9");
    assert_eq!(format!("{:#}", result.unwrap_err()), "--inventory-from-flake .#colmenaHive: give the flake without `#`; its hosts are read from its nixosConfigurations, colmenaHive and deploy outputs");
    let (_, result) = with_stand_in("./no-such-flake-here", "exit 9");
    let missing = "--inventory-from-flake ./no-such-flake-here: No such file or directory";
    assert!(format!("{:#}", result.unwrap_err()).starts_with(missing));
    assert!(calls(&stand_in).is_empty());
    Ok(())
}

/// The command line: `run --inventory-from-flake` reads the hosts before anything runs, so an
/// unknown `--hosts` lists the flake's hosts and tags without connecting to any.
fn run_reads_the_hosts_from_the_flake() -> Result<(), Failed> {
    let dir = tempfile::tempdir().unwrap();
    let mut facts = expected_facts();
    facts["hosts"].as_array_mut().unwrap().pop();
    let stand_in = StandIn::new(&canned(&facts));
    let scenario = dir.path().join("deployment.toml");
    std::fs::write(&scenario, PASSING).unwrap();
    let flake = dir.path().to_str().unwrap();
    let output = stand_in
        .harness(dir.path())
        .arg("run")
        .arg(&scenario)
        .args(["--inventory-from-flake", flake, "--hosts", "nowhere"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("--hosts: no host or tag `nowhere` in flake {flake}; hosts: berlin, kiel, lima, oslo, paris, rome; tags: eu, prod")), "{stderr}");
    assert_eq!(calls(&stand_in).len(), 1);
    Ok(())
}

/// Whether real `nix` can evaluate a flake here (it copies the flake into its store).
fn nix_reads_flakes() -> Option<String> {
    let dir = tempfile::tempdir().ok()?;
    std::fs::write(
        dir.path().join("flake.nix"),
        "{ outputs = { self }: { }; }\n",
    )
    .ok()?;
    let expression = format!("(builtins.getFlake \"{}\").outPath", dir.path().display());
    let mut args: Vec<String> = nix_standin::FEATURES
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["eval", "--json", "--impure", "--expr", &expression].map(String::from));
    match std::process::Command::new("nix").args(&args).output() {
        Err(e) => Some(format!("nix cannot run here ({e})")),
        Ok(out) if !out.status.success() => Some(format!(
            "nix cannot evaluate a flake here: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or("(no error line)")
        )),
        Ok(_) => None,
    }
}

fn main() {
    let arguments = Arguments::from_args();
    let no_instantiate = match std::process::Command::new("nix-instantiate")
        .arg("--version")
        .output()
    {
        Ok(out) if out.status.success() => None,
        _ => Some("nix-instantiate is not on PATH; run ci/install.d/20-nix-tools.sh".into()),
    };
    let no_flakes = no_instantiate.clone().or_else(nix_reads_flakes);
    if let Some(reason) = no_instantiate.as_ref().or(no_flakes.as_ref()) {
        eprintln!("fleet_flake: tests with real Nix skipped: {reason}");
    }
    let (instantiate, flakes) = (no_instantiate.is_some(), no_flakes.is_some());
    macro_rules! trial {
        ($test:ident, $ignored:expr) => {
            Trial::test(stringify!($test), $test).with_ignored_flag($ignored)
        };
    }
    let trials = vec![
        trial!(hosts_of_plain_outputs, instantiate),
        trial!(broken_and_missing_outputs_are_reported, instantiate),
        trial!(a_real_flake_gives_the_hosts, flakes),
        trial!(the_flake_is_evaluated_once_and_read_into_hosts, false),
        trial!(a_remote_reference_is_a_string_literal_not_code, false),
        trial!(every_problem_is_worded, false),
        trial!(nix_failures_and_bad_references_are_worded, false),
        trial!(run_reads_the_hosts_from_the_flake, false),
    ];
    libtest_mimic::run(&arguments, trials).exit();
}
