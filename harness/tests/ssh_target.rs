//! The ssh target against a real OpenSSH server on 127.0.0.1 with throwaway host and user keys.

#[path = "support/scenario_dir.rs"]
mod scenario_dir;
#[path = "support/sshd.rs"]
mod sshd;

use std::time::{Duration, Instant};

use bitpoll_harness::target::ssh::{HostKeyPolicy, SshAddress, SshOptions, SshTarget};
use bitpoll_harness::target::{Command, Target, TargetError};
use predicates::prelude::*;
use scenario_dir::{harness, ScenarioDir};

fn options(server: &sshd::Sshd, key: &std::path::Path, policy: HostKeyPolicy) -> SshOptions {
    SshOptions {
        identity: Some(key.to_path_buf()),
        policy,
        known_hosts: server.known_hosts.clone(),
        connect_timeout: Duration::from_secs(10),
    }
}

fn connect(
    server: &sshd::Sshd,
    key: &std::path::Path,
    policy: HostKeyPolicy,
) -> Result<SshTarget, TargetError> {
    SshTarget::connect(
        SshAddress::parse(&server.target()).unwrap(),
        &options(server, key, policy),
    )
}

#[test]
fn runs_commands_with_their_exit_codes_and_separate_streams() {
    let server = sshd::start();
    let target = connect(&server, &server.user_key, HostKeyPolicy::Strict).expect("connects");
    let output = target
        .exec(&Command::new(
            ["sh", "-c", "echo out; echo err >&2; exit 7"],
            Duration::from_secs(10),
        ))
        .unwrap();
    assert_eq!(output.exit_code, Some(7));
    assert_eq!(output.stdout_text(), "out\n");
    assert_eq!(output.stderr_text(), "err\n");
    let quoted = target
        .exec(&Command::new(
            ["printf", "%s|", "two words", "it's"],
            Duration::from_secs(10),
        ))
        .unwrap();
    assert_eq!(quoted.stdout_text(), "two words|it's|");
    let piped = target
        .exec(
            &Command::new(["tr", "a-z", "A-Z"], Duration::from_secs(10)).with_stdin("stdin works"),
        )
        .unwrap();
    assert_eq!(piped.stdout_text(), "STDIN WORKS");
}

#[test]
fn reuses_one_session_across_commands() {
    let server = sshd::start();
    let target = connect(&server, &server.user_key, HostKeyPolicy::Strict).unwrap();
    for index in 0..10 {
        let output = target
            .exec(&Command::new(
                ["echo", &index.to_string()],
                Duration::from_secs(10),
            ))
            .unwrap();
        assert_eq!(output.stdout_text().trim(), index.to_string());
    }
    let accepted = server.log_text().matches("Accepted publickey").count();
    assert_eq!(
        accepted,
        1,
        "expected one login for ten commands:\n{}",
        server.log_text()
    );
}

#[test]
fn writes_and_reads_files() {
    let server = sshd::start();
    let target = connect(&server, &server.user_key, HostKeyPolicy::Strict).unwrap();
    let path = server.dir.path().join("written by harness.txt");
    let path = path.to_str().unwrap();
    let contents = b"line one\nbinary \x00\xff end\n";
    target
        .write_file(path, contents, Duration::from_secs(10))
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), contents);
    assert_eq!(
        target.read_file(path, Duration::from_secs(10)).unwrap(),
        contents
    );
    let missing = target
        .read_file("/nonexistent/file", Duration::from_secs(10))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("No such file or directory"), "{missing}");
}

#[test]
fn a_hanging_remote_command_times_out_and_is_killed() {
    let server = sshd::start();
    let target = connect(&server, &server.user_key, HostKeyPolicy::Strict).unwrap();
    let marker = server.dir.path().join("still-running");
    let script = format!("sleep 30; touch {}", marker.display());
    let started = Instant::now();
    let output = target
        .exec(&Command::new(["sh", "-c", &script], Duration::from_secs(1)))
        .unwrap();
    assert!(output.timed_out);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    // The session is still usable after a timeout.
    let next = target
        .exec(&Command::new(["true"], Duration::from_secs(10)))
        .unwrap();
    assert_eq!(next.exit_code, Some(0));
    assert!(!marker.exists());
}

#[test]
fn a_key_the_server_does_not_know_is_refused_with_a_clear_error() {
    let server = sshd::start();
    let error = connect(&server, &server.unknown_key, HostKeyPolicy::Strict)
        .err()
        .expect("the unknown key is refused")
        .to_string();
    assert!(error.contains("the server refused the key"), "{error}");
    assert!(error.contains("authorized_keys"), "{error}");
    assert!(error.starts_with(&server.target()), "{error}");
}

#[test]
fn an_unknown_host_key_is_refused_under_strict_and_recorded_under_accept_new() {
    let server = sshd::start();
    // What was there stays: a comment, and a last line without its newline.
    let before = "# the administrator's note\nother.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    std::fs::write(&server.known_hosts, before).unwrap();
    let error = connect(&server, &server.user_key, HostKeyPolicy::Strict)
        .err()
        .expect("strict refuses an unknown host")
        .to_string();
    assert!(error.contains("not found in"), "{error}");
    assert!(error.contains("--known-hosts accept-new"), "{error}");

    connect(&server, &server.user_key, HostKeyPolicy::AcceptNew)
        .expect("accept-new records the key");
    let recorded = std::fs::read_to_string(&server.known_hosts).unwrap();
    assert!(
        recorded.starts_with(&format!("{before}\n[127.0.0.1]:{} ", server.port)),
        "the key is appended on a line of its own, the rest kept: {recorded}"
    );
    connect(&server, &server.user_key, HostKeyPolicy::Strict)
        .expect("strict accepts the recorded key");
}

#[test]
fn a_changed_host_key_is_refused_even_under_accept_new() {
    let server = sshd::start();
    let other = std::fs::read_to_string(server.dir.path().join("unknown_key.pub")).unwrap();
    let mut fields = other.split_whitespace();
    let forged = format!(
        "[127.0.0.1]:{} {} {}\n",
        server.port,
        fields.next().unwrap(),
        fields.next().unwrap()
    );
    std::fs::write(&server.known_hosts, forged).unwrap();
    let error = connect(&server, &server.user_key, HostKeyPolicy::AcceptNew)
        .err()
        .expect("a mismatched key is refused")
        .to_string();
    assert!(error.contains("differs from the one in"), "{error}");
}

#[test]
fn the_cli_runs_a_scenario_over_ssh() {
    let server = sshd::start();
    let dir = ScenarioDir::new();
    let written = server.dir.path().join("secret");
    let file = dir.write(
        "remote.toml",
        &format!(
            r#"
[scenario]
name = "remote"
summary = "commands and files over ssh"

[[step]]
name = "make a private file"
sh = "umask 077; echo hidden > '{path}'"

[[step]]
name = "it is private"
file = "{path}"
expect = {{ mode = "0600", owner = "{user}", content = "hidden" }}

[[step]]
name = "exit codes travel"
run = ["sh", "-c", "exit 3"]
expect.exit = 3

[[step]]
name = "hostname captured"
run = ["uname", "-s"]
capture.kernel = {{ regex = "(\\w+)" }}

[[step]]
name = "capture used"
run = ["echo", "{{{{kernel}}}}"]
expect.stdout = "Linux"
"#,
            path = written.display(),
            user = server.user
        ),
    );
    let junit = dir.path("junit.xml");
    harness()
        .args(["run", file.to_str().unwrap(), "--target", &server.target()])
        .args(["--identity", server.user_key.to_str().unwrap()])
        .args(["--known-hosts-file", server.known_hosts.to_str().unwrap()])
        .args(["--junit", junit.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "on ssh://{}@127.0.0.1:{}",
            server.user, server.port
        )))
        .stdout(predicate::str::ends_with("5 passed, 0 failed, 0 skipped\n"));
    let xml = std::fs::read_to_string(junit).unwrap();
    assert!(
        xml.contains("<testsuite name=\"remote\" tests=\"5\" failures=\"0\" skipped=\"0\""),
        "{xml}"
    );

    // A wrong key through the CLI: a usage-level error (exit 2) that says what to do.
    harness()
        .args(["run", file.to_str().unwrap(), "--target", &server.target()])
        .args(["--identity", server.unknown_key.to_str().unwrap()])
        .args(["--known-hosts-file", server.known_hosts.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the server refused the key"));
}

#[test]
fn a_lost_connection_fails_the_next_commands_at_once() {
    let server = sshd::start();
    let target = connect(&server, &server.user_key, HostKeyPolicy::Strict).expect("connects");
    let ok = target
        .exec(&Command::new(["true"], Duration::from_secs(10)))
        .unwrap();
    assert_eq!(ok.exit_code, Some(0));
    server.kill_sessions();
    let started = Instant::now();
    let first = target
        .exec(&Command::new(["true"], Duration::from_secs(60)))
        .expect_err("the connection is gone")
        .to_string();
    assert!(first.starts_with(&server.target()), "{first}");
    let second = target
        .exec(&Command::new(["true"], Duration::from_secs(60)))
        .expect_err("still gone")
        .to_string();
    assert!(
        second.contains("not run: the connection was lost earlier ("),
        "{second}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "took {:?}",
        started.elapsed()
    );
}
