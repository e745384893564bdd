//! Where scenario commands run. The trait is deliberately minimal (run a command, read and write
//! a file); everything else (unit state, file modes, waiting) is built on it in the runner.

use std::time::Duration;

use thiserror::Error;

/// A command to run on a target: an argv, never a shell line (`sh` steps pass `sh -c` here).
#[derive(Debug, Clone)]
pub struct Command {
    pub argv: Vec<String>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl Command {
    pub fn new<I, S>(argv: I, timeout: Duration) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
            timeout,
        }
    }

    pub fn with_stdin(mut self, stdin: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(stdin.into());
        self
    }

    /// The command as a person would type it, for reports.
    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|arg| shell_quote(arg))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a finished (or timed out) command left behind.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// The exit code; `None` when the command was killed by a signal or its timeout.
    pub exit_code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

#[derive(Debug, Error)]
pub enum TargetError {
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{target}: {message}")]
    Ssh { target: String, message: String },
    #[error("`{command}` failed with exit code {code}: {stderr}")]
    CommandFailed {
        command: String,
        code: String,
        stderr: String,
    },
}

pub trait Target: Send + Sync {
    /// How reports name this target, such as `local` or `ssh://root@server:22`.
    fn describe(&self) -> String;

    fn exec(&self, command: &Command) -> Result<Output, TargetError>;

    fn read_file(&self, path: &str, timeout: Duration) -> Result<Vec<u8>, TargetError> {
        let command = Command::new(["cat", "--", path], timeout);
        let output = self.exec(&command)?;
        checked(&command, output).map(|output| output.stdout)
    }

    fn write_file(
        &self,
        path: &str,
        contents: &[u8],
        timeout: Duration,
    ) -> Result<(), TargetError> {
        let command = Command::new(["sh", "-c", "cat > \"$1\"", "sh", path], timeout)
            .with_stdin(contents.to_vec());
        let output = self.exec(&command)?;
        checked(&command, output).map(|_| ())
    }
}

/// Turns a non-zero exit into an error that carries the command and its stderr.
pub fn checked(command: &Command, output: Output) -> Result<Output, TargetError> {
    if output.exit_code == Some(0) {
        return Ok(output);
    }
    let code = match (output.exit_code, output.timed_out) {
        (_, true) => "none (timed out)".to_string(),
        (Some(code), _) => code.to_string(),
        (None, _) => "none (killed by a signal)".to_string(),
    };
    Err(TargetError::CommandFailed {
        command: command.display(),
        code,
        stderr: output.stderr_text().trim().to_string(),
    })
}

/// Quotes an argument for a POSIX shell, leaving plain words as they are.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(shell_quote("systemctl"), "systemctl");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
