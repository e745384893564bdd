//! Django's deployment checks on a configuration before it is deployed: the package's
//! `bitpoll-manage check --deploy` with the rendered settings file, an empty temporary state
//! directory and throwaway secrets laid out as systemd credentials (ARCHITECTURE.md), so the
//! settings shim sees exactly what the service would, minus the real secrets.

use std::io::Read as _;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::process::Command;

/// The credentials the settings shim looks up (package/files/settings_local.py).
const CREDENTIALS: [&str; 3] = ["secret_key", "encryption_key", "db_password"];

/// The settings shim's exit status for a configuration error (EX_CONFIG).
pub const EXIT_CONFIG: i32 = 78;

#[derive(Debug, thiserror::Error)]
pub enum DeployCheckError {
    #[error("cannot prepare the temporary state and credentials: {0}")]
    Prepare(std::io::Error),
    #[error("{path} is missing: the package has no bitpoll-manage (is it the Bitpoll package?)")]
    NoManage { path: String },
    #[error("cannot run {path}: {source}")]
    Spawn {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct DeployCheck {
    /// The exit status; None when killed by a signal.
    pub status: Option<i32>,
    /// What Django printed, stdout then stderr.
    pub output: String,
}

impl DeployCheck {
    pub fn passed(&self) -> bool {
        self.status == Some(0)
    }
}

/// Runs `PACKAGE/bin/bitpoll-manage check --deploy` with the settings file.
pub fn run(package: &Path, settings_file: &Path) -> Result<DeployCheck, DeployCheckError> {
    let manage = package.join("bin/bitpoll-manage");
    if !manage.is_file() {
        return Err(DeployCheckError::NoManage {
            path: manage.display().to_string(),
        });
    }
    let work = tempfile::tempdir().map_err(DeployCheckError::Prepare)?;
    let state = work.path().join("state");
    let credentials = work.path().join("credentials");
    for dir in [&state, &credentials] {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(DeployCheckError::Prepare)?;
    }
    for name in CREDENTIALS {
        write_secret(&credentials.join(name), &throwaway_secret(name)?)
            .map_err(DeployCheckError::Prepare)?;
    }
    let output = Command::new(&manage)
        .args(["check", "--deploy"])
        .env("BITPOLL_SETTINGS_FILE", settings_file)
        .env("BITPOLL_STATE_DIR", &state)
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .output()
        .map_err(|source| DeployCheckError::Spawn {
            path: manage.display().to_string(),
            source,
        })?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok(DeployCheck {
        status: output.status.code(),
        output: text.trim_end().to_string(),
    })
}

fn write_secret(path: &Path, value: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(value.as_bytes())
}

/// A random secret of the right form: the encryption key is a Fernet key (URL-safe base64 of
/// 32 bytes); the others are long hexadecimal strings, which Django's checks accept as keys.
fn throwaway_secret(name: &str) -> Result<String, DeployCheckError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(DeployCheckError::Prepare)?;
    Ok(if name == "encryption_key" {
        base64_url(&bytes)
    } else {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// URL-safe base64 with padding, as Python's `base64.urlsafe_b64encode`.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_python() {
        assert_eq!(base64_url(b"\xfb\xff"), "-_8=");
        assert_eq!(base64_url(b"abc"), "YWJj");
        assert_eq!(base64_url(b"a"), "YQ==");
        assert_eq!(base64_url(&[0u8; 32]).len(), 44);
    }
}
