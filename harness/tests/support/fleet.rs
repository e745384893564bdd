//! A fleet of real targets that needs no Bitpoll, for the fleet tests: the local machine, a
//! real OpenSSH server on 127.0.0.1, a port nothing listens on, and a listener that accepts and
//! never answers; with the scenarios they run and helpers to read what a run wrote.

// Every test binary includes this file and each uses only part of it.
#![allow(dead_code)]

#[path = "sshd.rs"]
pub mod sshd;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "ok.toml",
        "[scenario]\nname = \"ok\"\nsummary = \"s\"\n[vars]\ngreeting = \"hello\"\n\
         [[step]]\nname = \"greets\"\nsh = \"echo {{greeting}}\"\nexpect.stdout.contains = \"h\"\n",
    ),
    (
        "fails.toml",
        "[scenario]\nname = \"fails\"\nsummary = \"s\"\n[[step]]\nname = \"false\"\nsh = \"echo broken; false\"\n",
    ),
    // Passes only where the inventory's vars replace the scenario's greeting.
    (
        "greeting.toml",
        "[scenario]\nname = \"greeting\"\nsummary = \"s\"\n[vars]\ngreeting = \"hello\"\n\
         [[step]]\nname = \"greets\"\nsh = \"echo {{greeting}}\"\nexpect.stdout.contains = \"hi from beta\"\n",
    ),
    // Each host of a pair marks itself and waits for the other: it passes only when both run
    // at the same time.
    (
        "rendezvous.toml",
        "[scenario]\nname = \"rendezvous\"\nsummary = \"s\"\n[vars]\nme = \"x\"\nother = \"y\"\ndir = \"/tmp\"\n\
         [[step]]\nname = \"meet\"\ntimeout = \"8s\"\n\
         sh = \"touch {{dir}}/{{me}}; for i in $(seq 60); do [ -e {{dir}}/{{other}} ] && exit 0; sleep 0.1; done; exit 1\"\n",
    ),
];

pub struct Fleet {
    pub dir: tempfile::TempDir,
    pub sshd: sshd::Sshd,
    /// Accepts connections and never answers: an sshd that hangs.
    _hang: TcpListener,
    pub hang_port: u16,
    pub closed_port: u16,
}

impl Fleet {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("scenarios")).unwrap();
        for (name, text) in SCENARIOS {
            std::fs::write(dir.path().join("scenarios").join(name), text).unwrap();
        }
        let hang = TcpListener::bind("127.0.0.1:0").unwrap();
        let hang_port = hang.local_addr().unwrap().port();
        let closed_port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        Self {
            dir,
            sshd: sshd::start(),
            _hang: hang,
            hang_port,
            closed_port,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Five hosts: two local, the sshd, the closed port and the hanging one (2 s budget).
    pub fn inventory(&self) -> PathBuf {
        let text = format!(
            r#"[defaults]
identity = "{key}"
known_hosts_file = "{known}"
connect_timeout = "2s"
tags = ["all"]

[[host]]
name = "alpha"
target = "local"
tags = ["all", "local"]

[[host]]
name = "beta"
target = "local"
tags = ["all", "local"]
vars.greeting = "hi from beta"

[[host]]
name = "ssh"
target = "{ssh}"

[[host]]
name = "closed"
target = "ssh://{user}@127.0.0.1:{closed}"
tags = ["down"]

[[host]]
name = "hang"
target = "ssh://{user}@127.0.0.1:{hang}"
tags = ["down"]
"#,
            key = self.sshd.user_key.display(),
            known = self.sshd.known_hosts.display(),
            ssh = self.sshd.target(),
            user = self.sshd.user,
            closed = self.closed_port,
            hang = self.hang_port,
        );
        let path = self.path("fleet.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn run(&self, inventory: &Path, args: &[&str]) -> Output {
        Command::cargo_bin("bitpoll-harness")
            .unwrap()
            .arg("run")
            .args(args)
            .arg("--scenarios")
            .arg(self.path("scenarios"))
            .arg("--inventory")
            .arg(inventory)
            .arg("--report")
            .arg(self.path("report.json"))
            .arg("--junit")
            .arg(self.path("junit.xml"))
            .output()
            .unwrap()
    }

    pub fn report(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.path("report.json")).unwrap()).unwrap()
    }
}

pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn host<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|host| host["name"] == name)
        .unwrap_or_else(|| panic!("no host {name} in {report:#}"))
}
