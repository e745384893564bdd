//! A fleet of real Bitpoll deployments, six hosts at once: the systemd container testbed over
//! SSH; one process testbed reached both locally and through a real sshd (two hosts sharing
//! one Bitpoll); a second process testbed whose Bitpoll is stopped (fails); a port nothing
//! listens on (unreachable); and a listener that accepts and never answers, an sshd that hangs
//! (unreachable once its connect timeout is over). Every host's result must be right, the exit
//! code 2 (unreachable hosts win), and both reports complete.
//!
//! Needs BITPOLL_SRC, root and systemd-nspawn; reported as ignored, with the reason, otherwise.

#[path = "support/container.rs"]
mod container;
#[path = "support/process_testbed.rs"]
mod process_testbed;
#[path = "support/sshd.rs"]
mod sshd;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(message().into())
    }
}

fn fleet_of_testbeds(source: &Path) -> Result<(), Failed> {
    let container = container::Container::up(&["--src".into(), source.display().to_string()])?;
    let shared = process_testbed::Testbed::start(source)?;
    let stopped = process_testbed::Testbed::start(source)?;
    let stop = Command::new(process_testbed::repository().join("ci/testbed/bitpoll-testbed"))
        .args(["stop", "--dir"])
        .arg(stopped.dir.path().join("instance"))
        .output()?;
    check(stop.status.success(), || {
        format!("cannot stop the second testbed: {stop:?}")
    })?;
    let value = |testbed: &process_testbed::Testbed, key: &str| -> Result<String, Failed> {
        testbed
            .value(key)
            .map(str::to_string)
            .ok_or_else(|| format!("the testbed printed no {key}").into())
    };
    // The sshd's sessions get what the module gives Bitpoll's commands, as the local host does.
    let environment = format!(
        "SetEnv PATH={}:/usr/local/bin:/usr/bin:/bin BITPOLL_SETTINGS_FILE={} BITPOLL_STATE_DIR={} CREDENTIALS_DIRECTORY={}",
        value(&shared, "BIN_DIR")?,
        value(&shared, "SETTINGS_FILE")?,
        value(&shared, "STATE_DIR")?,
        value(&shared, "CREDENTIALS_DIRECTORY")?
    );
    let sshd = sshd::start_with(&environment);
    let hang = TcpListener::bind("127.0.0.1:0")?;
    let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = tempfile::tempdir()?;
    let inventory = dir.path().join("fleet.toml");
    std::fs::write(
        &inventory,
        format!(
            r#"[defaults]
identity = "{key}"
known_hosts_file = "{known}"
connect_timeout = "3s"

[[host]]
name = "container"
target = "{container_target}"
identity = "{container_key}"
known_hosts_file = "{container_known}"
base_url = "{container_url}"
tags = ["systemd"]

[[host]]
name = "process"
target = "local"
base_url = "{shared_url}"
tags = ["shared"]

[[host]]
name = "process-ssh"
target = "{ssh}"
base_url = "{shared_url}"
tags = ["shared"]

[[host]]
name = "stopped"
target = "{ssh}"
base_url = "{stopped_url}"

[[host]]
name = "closed"
target = "ssh://root@127.0.0.1:{closed}"
base_url = "http://127.0.0.1:{closed}"

[[host]]
name = "hang"
target = "ssh://root@127.0.0.1:{hang_port}"
base_url = "http://127.0.0.1:{closed}"
"#,
            key = sshd.user_key.display(),
            known = sshd.known_hosts.display(),
            container_target = container.value("SSH_TARGET")?,
            container_key = container.value("SSH_IDENTITY")?,
            container_known = container.value("SSH_KNOWN_HOSTS")?,
            container_url = container.value("BASE_URL")?,
            shared_url = value(&shared, "BASE_URL")?,
            stopped_url = value(&stopped, "BASE_URL")?,
            ssh = sshd.target(),
            hang_port = hang.local_addr()?.port(),
        ),
    )?;
    let report_path = dir.path().join("report.json");
    let junit_path = dir.path().join("junit.xml");
    let output = shared
        .harness()
        .args(["run", "deployment", "--inventory"])
        .arg(&inventory)
        .arg("--report")
        .arg(&report_path)
        .arg("--junit")
        .arg(&junit_path)
        .output()?;
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The whole run in the test's log: docs/fleet.md shows one.
    eprintln!("{all}");
    check(output.status.code() == Some(2), || {
        format!("exit 2 expected: {all}")
    })?;
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_path)?)?;
    let host = |name: &str| -> Result<&Value, Failed> {
        report["hosts"]
            .as_array()
            .and_then(|hosts| hosts.iter().find(|host| host["name"] == name))
            .ok_or_else(|| format!("no host {name}: {all}").into())
    };
    let expected = [
        ("container", "passed"),
        ("process", "passed"),
        ("process-ssh", "passed"),
        ("stopped", "failed"),
        ("closed", "unreachable"),
        ("hang", "unreachable"),
    ];
    for (name, status) in expected {
        let found = host(name)?;
        check(found["status"] == status, || {
            format!("{name} should be {status}: {found:#}\n{all}")
        })?;
    }
    // Where systemd runs every step runs; the process testbeds skip the systemd steps.
    let container_summary = &host("container")?["summary"];
    check(
        container_summary["skipped"] == 0 && container_summary["failed"] == 0,
        || format!("the container skips or fails nothing: {container_summary}\n{all}"),
    )?;
    check(
        host("stopped")?["summary"]["failed"].as_u64() >= Some(1),
        || all.clone(),
    )?;
    let hang_reason = host("hang")?["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    check(
        hang_reason.contains("no SSH greeting came within 3s"),
        || format!("the hang is bounded: {hang_reason}"),
    )?;
    check(report["summary"]["hosts"] == 6, || all.clone())?;
    let junit = std::fs::read_to_string(&junit_path)?;
    for (name, _) in expected {
        let suite = format!("<testsuite name=\"{name}/deployment\"");
        check(junit.contains(&suite), || format!("{suite} in {junit}"))?;
    }
    check(all.contains("failures on stopped"), || all.clone())?;
    Ok(())
}

fn main() {
    let arguments = Arguments::from_args();
    let source = std::env::var_os("BITPOLL_SRC").map(std::path::PathBuf::from);
    let reason =
        container::host_skip_reason().or_else(|| process_testbed::skip_reason(source.as_deref()));
    if let Some(reason) = &reason {
        eprintln!("fleet_testbeds: skipped: {reason}");
    }
    let trial = Trial::test("six_hosts_container_and_process_testbeds", move || {
        fleet_of_testbeds(source.as_deref().ok_or("BITPOLL_SRC is not set")?)
    })
    .with_kind("needs BITPOLL_SRC and systemd-nspawn")
    .with_ignored_flag(reason.is_some());
    libtest_mimic::run(&arguments, vec![trial]).exit();
}
