//! A stand-in `nix` on PATH for the Nix-driving commands: a shell script, written by the test
//! into a temporary directory, that records every argument vector it is called with and answers
//! from canned outputs, so that tests can check the exact commands the harness would run.

// Every test binary includes this file and each uses only part of it.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub const FEATURES: [&str; 2] = ["--extra-experimental-features", "nix-command flakes"];

pub struct StandIn {
    pub dir: tempfile::TempDir,
}

impl StandIn {
    /// `body` is sh code run after the call is recorded; it sees the arguments as "$@" and
    /// "$*", and the stand-in's directory as "$here", and decides what to print and how to exit.
    pub fn new(body: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let calls = dir.path().join("calls");
        // One line per call, each argument followed by the unit separator (\037), which no
        // argument of the harness contains. `$here` is the directory of the canned outputs.
        let script = format!(
            "#!/bin/sh\nhere='{}'\nprintf '%s\\037' \"$@\" >> '{}'\nprintf '\\n' >> '{}'\n{body}\n",
            dir.path().display(),
            calls.display(),
            calls.display()
        );
        write_executable(&dir.path().join("bin/nix"), &script);
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Every call so far, as argument vectors.
    pub fn calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.path("calls")).unwrap_or_default();
        text.lines()
            .map(|line| {
                let mut args: Vec<String> = line.split('\u{1f}').map(str::to_string).collect();
                args.pop();
                args
            })
            .collect()
    }

    /// PATH with the stand-in first, then the real one (for nix-instantiate, systemd-analyze).
    pub fn search_path(&self) -> String {
        format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// The harness with the stand-in on PATH, run in `cwd`.
    pub fn harness(&self, cwd: &Path) -> Command {
        let mut command = Command::cargo_bin("bitpoll-harness").expect("the harness binary");
        command.current_dir(cwd).env("PATH", self.search_path());
        command
    }
}

/// `nix` with the experimental features, then `args`: what the harness runs.
pub fn nix_call(args: &[&str]) -> Vec<String> {
    FEATURES.iter().chain(args).map(|s| s.to_string()).collect()
}

pub fn write_executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A real report: the harness runs `scenario` (TOML text) with `--target local` and writes its
/// report into `output` with `harness-status`, as the VM test's output holds them.
pub fn vm_output(output: &Path, scenario: &str) {
    std::fs::create_dir_all(output).unwrap();
    let file = output.join("scenario.toml");
    std::fs::write(&file, scenario).unwrap();
    let result = std::process::Command::new(env!("CARGO_BIN_EXE_bitpoll-harness"))
        .arg("run")
        .arg(&file)
        .args(["--target", "local", "--report"])
        .arg(output.join("report.json"))
        .output()
        .expect("run the harness");
    let code = result.status.code().expect("an exit code");
    assert!(
        code == 0 || code == 1,
        "the harness could not run: {result:?}"
    );
    std::fs::write(output.join("harness-status"), format!("{code}\n")).unwrap();
}

pub const PASSING: &str = r#"
[scenario]
name = "deployment"
summary = "passes"

[[step]]
name = "the service answers"
run = ["true"]

[[step]]
name = "memory in use"
run = ["echo", "181000000"]
capture.memory_rss_bytes = { regex = "^([0-9]+)$", metric = true }
"#;

pub const FAILING: &str = r#"
[scenario]
name = "migrations"
summary = "fails"

[[step]]
name = "restart the service"
run = ["true"]
metric = "restart_ms"

[[step]]
name = "nothing left to migrate"
sh = "echo 'Operations to perform: 1' ; exit 3"
"#;
