//! A throwaway OpenSSH server on 127.0.0.1: its own host key, an authorized user key, a second
//! key it does not know, and a known-hosts file with its host key. Stopped on drop.

// Every test binary includes this file and each uses only part of it.
#![allow(dead_code)]

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const SSHD: &str = "/usr/sbin/sshd";

pub struct Sshd {
    pub port: u16,
    pub user: String,
    pub dir: TempDir,
    pub user_key: PathBuf,
    pub unknown_key: PathBuf,
    pub known_hosts: PathBuf,
    pub log: PathBuf,
    child: Child,
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "bitpoll-harness-test",
            "-f",
        ])
        .arg(path)
        .status()
        .expect("ssh-keygen runs (package openssh-client)");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn start() -> Sshd {
    start_with("")
}

/// An sshd with more configuration lines, such as `SetEnv NAME=value` for its sessions.
pub fn start_with(extra_config: &str) -> Sshd {
    assert!(
        Path::new(SSHD).exists(),
        "{SSHD} is missing: install openssh-server (ci/install.d/10-debian.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    keygen(&path("host_key"));
    keygen(&path("user_key"));
    keygen(&path("unknown_key"));
    std::fs::copy(path("user_key.pub"), path("authorized_keys")).unwrap();
    // sshd running as root needs its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let port = free_port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\n\
         PidFile {pid}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nLogLevel VERBOSE\n{extra_config}\n",
        host = path("host_key").display(),
        keys = path("authorized_keys").display(),
        pid = path("sshd.pid").display(),
    );
    std::fs::write(path("sshd_config"), config).unwrap();
    let log = path("sshd.log");
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(path("sshd_config"))
        .arg("-E")
        .arg(&log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start sshd");
    let host_public = std::fs::read_to_string(path("host_key.pub")).unwrap();
    let mut fields = host_public.split_whitespace();
    let known = format!(
        "[127.0.0.1]:{port} {} {}\n",
        fields.next().unwrap(),
        fields.next().unwrap()
    );
    std::fs::write(path("known_hosts"), known).unwrap();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let server = Sshd {
        port,
        user,
        user_key: path("user_key"),
        unknown_key: path("unknown_key"),
        known_hosts: path("known_hosts"),
        log,
        dir,
        child,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not listen on port {port}: {}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

impl Sshd {
    pub fn target(&self) -> String {
        format!("ssh://{}@127.0.0.1:{}", self.user, self.port)
    }

    /// Kills the server's per-connection processes, as a host that goes down mid-run would
    /// drop its connections; the listener itself stays.
    pub fn kill_sessions(&self) {
        let status = Command::new("pkill")
            .args(["-KILL", "-P", &self.child.id().to_string()])
            .status()
            .expect("pkill runs (package procps)");
        assert!(
            status.success(),
            "no session of sshd {} to kill",
            self.child.id()
        );
    }

    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
