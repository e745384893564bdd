//! Scenario files written into a temporary directory, and the harness binary to run them.

// Every test binary includes this file and each uses only part of it.
#![allow(dead_code)]

use std::path::PathBuf;

use assert_cmd::Command;
use tempfile::TempDir;

pub struct ScenarioDir {
    pub dir: TempDir,
}

impl ScenarioDir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write scenario");
        path
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// `bitpoll-harness run FILE --target local`, with a base URL when given.
pub fn run_local(file: &std::path::Path, base_url: Option<&str>) -> Command {
    let mut command = harness();
    command.args([
        "run",
        file.to_str().expect("utf-8 path"),
        "--target",
        "local",
    ]);
    if let Some(base_url) = base_url {
        command.args(["--base-url", base_url]);
    }
    command
}

pub fn harness() -> Command {
    Command::cargo_bin("bitpoll-harness").expect("the harness binary is built")
}
