//! The `ssh` target: commands over one SSH session reused across steps (libssh2 via `ssh2`).
//!
//! Key authentication only, a host key policy that defaults to `strict`, and a per-command
//! timeout enforced twice: on the remote side by coreutils `timeout` (so a hung command is
//! killed there, not just abandoned) and on our side by the read loop's deadline.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use ssh2::{CheckResult, HashType, KnownHostFileKind, Session};

use super::address::connect_tcp;
pub use super::address::SshAddress;
use crate::target::{Command, Output, Target, TargetError};

/// How to treat the server's host key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HostKeyPolicy {
    /// The key must already be in the known-hosts file.
    Strict,
    /// An unknown host's key is added; a changed key is still refused.
    AcceptNew,
}

pub struct SshOptions {
    pub identity: Option<PathBuf>,
    pub policy: HostKeyPolicy,
    pub known_hosts: PathBuf,
    pub connect_timeout: Duration,
}

pub struct SshTarget {
    address: SshAddress,
    session: Mutex<Session>,
    /// Why the connection is taken for lost (a transport error, or no answer even after the
    /// remote `timeout` should have ended the command): later commands fail at once with it
    /// instead of each waiting out its own timeout on a dead host.
    lost: Mutex<Option<String>>,
}

impl SshTarget {
    /// Connects, checks the host key and authenticates; every failure says what to do.
    pub fn connect(address: SshAddress, options: &SshOptions) -> Result<Self, TargetError> {
        let error = |message: String| TargetError::Ssh {
            target: address.to_string(),
            message,
        };
        let tcp = connect_tcp(&address, options.connect_timeout).map_err(error)?;
        let mut session =
            Session::new().map_err(|e| error(format!("cannot start libssh2: {e}")))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(options.connect_timeout.as_millis() as u32);
        session.handshake().map_err(|e| {
            // LIBSSH2_ERROR_TIMEOUT: the port accepted but no SSH server answered in time.
            if e.code() == ssh2::ErrorCode::Session(-9) {
                error(format!(
                    "ssh handshake failed: the port accepted the connection but no SSH greeting came within {:?}; check that sshd answers there (a hung sshd, or not an SSH port), or raise connect_timeout",
                    options.connect_timeout
                ))
            } else {
                error(format!("ssh handshake failed: {e}"))
            }
        })?;
        check_host_key(&session, &address, options).map_err(error)?;
        authenticate(&session, &address, options.identity.as_deref()).map_err(error)?;
        Ok(Self {
            address,
            session: Mutex::new(session),
            lost: Mutex::new(None),
        })
    }
}

fn fingerprint(session: &Session) -> String {
    use std::fmt::Write as _;
    let Some(hash) = session.host_key_hash(HashType::Sha256) else {
        return "an unknown fingerprint".into();
    };
    let mut hex = String::new();
    for byte in hash {
        let _ = write!(hex, "{byte:02x}");
    }
    format!("sha256 {hex}")
}

static KNOWN_HOSTS_LOCK: Mutex<()> = Mutex::new(());

/// Appends one line instead of rewriting the file: libssh2 writes back only the entries it
/// understood, so a rewrite would drop comments and entries it cannot parse, and a single
/// appended line cannot lose another process's concurrent addition.
fn append_known_host(file: &Path, line: &str) -> Result<(), String> {
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut text = line.trim_end().to_string();
    text.push('\n');
    // A file whose last line lacks its newline would otherwise glue the two entries together.
    let needs_newline = std::fs::read(file)
        .map(|bytes| bytes.last().is_some_and(|last| *last != b'\n'))
        .unwrap_or(false);
    if needs_newline {
        text.insert(0, '\n');
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .and_then(|mut handle| handle.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot add the host key to {}: {e}", file.display()))
}

fn check_host_key(
    session: &Session,
    address: &SshAddress,
    options: &SshOptions,
) -> Result<(), String> {
    // Hosts of a fleet connect side by side and may share one known-hosts file: reading it,
    // checking and appending a new key happen one host at a time.
    let _one_at_a_time = KNOWN_HOSTS_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (key, key_type) = session.host_key().ok_or("the server sent no host key")?;
    let mut known_hosts = session
        .known_hosts()
        .map_err(|e| format!("cannot use known hosts: {e}"))?;
    let file = &options.known_hosts;
    if file.exists() {
        known_hosts
            .read_file(file, KnownHostFileKind::OpenSSH)
            .map_err(|e| format!("cannot read known-hosts file {}: {e}", file.display()))?;
    }
    match known_hosts.check_port(&address.host, address.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(format!(
            "the host key ({}) differs from the one in {}; if the host was reinstalled, remove its old entry",
            fingerprint(session),
            file.display()
        )),
        CheckResult::Failure => Err("the host key could not be checked".into()),
        CheckResult::NotFound => match options.policy {
            HostKeyPolicy::Strict => Err(format!(
                "host key ({}) not found in {} and --known-hosts is strict; add the host's key there or pass --known-hosts accept-new",
                fingerprint(session),
                file.display()
            )),
            HostKeyPolicy::AcceptNew => {
                let name = address.known_hosts_name();
                known_hosts
                    .add(&name, key, "added by bitpoll-harness", key_type.into())
                    .map_err(|e| format!("cannot record the host key: {e}"))?;
                let line = known_hosts
                    .hosts()
                    .ok()
                    .and_then(|hosts| hosts.into_iter().find(|host| host.name() == Some(name.as_str())))
                    .and_then(|host| known_hosts.write_string(&host, KnownHostFileKind::OpenSSH).ok())
                    .ok_or("cannot render the host key's known-hosts line")?;
                append_known_host(file, &line)
            }
        },
    }
}

fn authenticate(
    session: &Session,
    address: &SshAddress,
    identity: Option<&Path>,
) -> Result<(), String> {
    let user = &address.user;
    match identity {
        Some(key) => {
            if !key.is_file() {
                return Err(format!(
                    "identity file {} does not exist; pass --identity with a private key file",
                    key.display()
                ));
            }
            session.userauth_pubkey_file(user, None, key, None).map_err(|e| {
                format!(
                    "the server refused the key {} for user `{user}` ({}); check that its public key is in that user's authorized_keys",
                    key.display(),
                    e.message()
                )
            })?;
        }
        None => {
            session.userauth_agent(user).map_err(|e| {
                format!("no --identity given and ssh-agent authentication as `{user}` failed ({}); pass --identity KEYFILE", e.message())
            })?;
        }
    }
    if session.authenticated() {
        Ok(())
    } else {
        Err(format!("authentication as `{user}` did not complete"))
    }
}

impl Target for SshTarget {
    fn describe(&self) -> String {
        self.address.to_string()
    }

    fn exec(&self, command: &Command) -> Result<Output, TargetError> {
        let mut lost = self
            .lost
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(reason) = lost.as_ref() {
            return Err(TargetError::Ssh {
                target: self.address.to_string(),
                message: format!("not run: the connection was lost earlier ({reason})"),
            });
        }
        match self.exec_on_session(command) {
            Ok((output, true)) => Ok(output),
            // Our own deadline passed although the remote `timeout` should have ended the
            // command 5 s earlier: the server no longer answers.
            Ok((output, false)) => {
                *lost = Some(format!(
                    "no answer within `{}`'s timeout and 5 s more",
                    command.display()
                ));
                Ok(output)
            }
            Err(error) => {
                if let TargetError::Ssh { message, .. } = &error {
                    *lost = Some(message.clone());
                }
                Err(error)
            }
        }
    }
}

impl SshTarget {
    /// Runs a command on the session; the flag is false when the server never answered.
    fn exec_on_session(&self, command: &Command) -> Result<(Output, bool), TargetError> {
        let session = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let error = |message: String| TargetError::Ssh {
            target: self.address.to_string(),
            message,
        };
        let seconds = command.timeout.as_secs_f64().max(0.001);
        // `timeout` kills the remote command (its exit code 124 marks that); `-k` follows up with
        // SIGKILL for a command that ignores SIGTERM.
        let remote = format!("timeout -k 2 {seconds:.3} {}", command.display());
        session.set_blocking(true);
        session.set_timeout(30_000);
        let mut channel = session
            .channel_session()
            .map_err(|e| error(format!("cannot open a channel: {e}")))?;
        channel
            .exec(&remote)
            .map_err(|e| error(format!("cannot run `{}`: {e}", command.display())))?;
        if let Some(input) = &command.stdin {
            channel
                .write_all(input)
                .map_err(|e| error(format!("cannot send stdin: {e}")))?;
        }
        channel
            .send_eof()
            .map_err(|e| error(format!("cannot close stdin: {e}")))?;

        // Read stdout and stderr together without blocking, so neither can fill its window and
        // stall the other, and so our own deadline holds whatever the server does.
        let deadline = Instant::now() + command.timeout + Duration::from_secs(5);
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        session.set_blocking(false);
        let mut local_timeout = false;
        loop {
            let mut progressed = false;
            for (stream_id, sink) in [(0, &mut stdout), (1, &mut stderr)] {
                match channel.stream(stream_id).read(&mut buffer) {
                    Ok(0) => {}
                    Ok(n) => {
                        sink.extend_from_slice(&buffer[..n]);
                        progressed = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => {
                        session.set_blocking(true);
                        return Err(error(format!("reading output failed: {e}")));
                    }
                }
            }
            if channel.eof() && !progressed {
                break;
            }
            if Instant::now() >= deadline {
                local_timeout = true;
                break;
            }
            if !progressed {
                thread::sleep(Duration::from_millis(5));
            }
        }
        session.set_blocking(true);
        if local_timeout {
            let _ = channel.close();
            let output = Output {
                exit_code: None,
                stdout,
                stderr,
                timed_out: true,
            };
            return Ok((output, false));
        }
        channel
            .wait_close()
            .map_err(|e| error(format!("closing the channel failed: {e}")))?;
        let code = channel
            .exit_status()
            .map_err(|e| error(format!("no exit status: {e}")))?;
        let timed_out = code == 124 || code == 137;
        let output = Output {
            exit_code: if timed_out { None } else { Some(code) },
            stdout,
            stderr,
            timed_out,
        };
        Ok((output, true))
    }
}

/// The default known-hosts file: `~/.ssh/known_hosts`.
pub fn default_known_hosts() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    PathBuf::from(home).join(".ssh/known_hosts")
}
