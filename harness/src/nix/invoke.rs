//! Running `nix` and `nix-instantiate`: one place that spawns them, passes build progress
//! through to stderr, keeps Nix's own error message when a command fails, and turns a missing
//! program into one line that says what to install.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The flags every `nix` command gets, so that the commands work on a Nix installation whose
/// configuration has not enabled flakes (the default of the official installer).
pub const EXPERIMENTAL_FEATURES: [&str; 2] =
    ["--extra-experimental-features", "nix-command flakes"];

/// How many lines of a failed command's stderr are kept when Nix printed no `error:` line.
const TAIL_LINES: usize = 30;

#[derive(Debug, thiserror::Error)]
pub enum NixError {
    #[error("{program} is not installed or not on PATH: install Nix 2.18 or newer with flakes (https://nixos.org/download) and run this again")]
    Missing { program: String },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{message}")]
    Failed {
        command: String,
        status: String,
        message: String,
    },
    #[error("`{command}` printed output that is not what was expected ({problem}):\n{output}")]
    Output {
        command: String,
        problem: String,
        output: String,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },
}

/// What a command printed on stdout, and on stderr when it was not streamed.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub stdout: String,
    pub stderr: String,
}

/// The two programs, found on PATH unless the caller names them (tests do not need to: they put
/// a stand-in on PATH).
#[derive(Debug, Clone)]
pub struct Nix {
    nix: OsString,
    nix_instantiate: OsString,
}

impl Default for Nix {
    fn default() -> Self {
        Self {
            nix: "nix".into(),
            nix_instantiate: "nix-instantiate".into(),
        }
    }
}

impl Nix {
    /// `nix ARGS...` with the experimental features enabled; stderr is passed through line by
    /// line when `stream` is set (build logs with `-L`), kept for the error otherwise.
    pub fn nix(&self, args: &[String], stream: bool) -> Result<Captured, NixError> {
        let mut argv: Vec<String> = EXPERIMENTAL_FEATURES
            .iter()
            .map(|s| s.to_string())
            .collect();
        argv.extend(args.iter().cloned());
        run(&self.nix, &argv, stream)
    }

    /// `nix eval --json ...`, parsed.
    pub fn eval_json(&self, args: &[String]) -> Result<serde_json::Value, NixError> {
        let mut argv = vec!["eval".to_string(), "--json".to_string()];
        argv.extend(args.iter().cloned());
        let captured = self.nix(&argv, false)?;
        serde_json::from_str(&captured.stdout).map_err(|error| NixError::Output {
            command: describe(&self.nix, &argv),
            problem: format!("not JSON: {error}"),
            output: excerpt(&captured.stdout),
        })
    }

    /// `nix build ...` of installables whose arguments end `args`, with progress passed
    /// through; returns the store paths `--print-out-paths` printed, one per line.
    pub fn build(&self, args: &[String]) -> Result<Vec<PathBuf>, NixError> {
        let captured = self.nix(args, true)?;
        let paths: Vec<PathBuf> = captured
            .stdout
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(PathBuf::from)
            .collect();
        if paths.is_empty() || paths.iter().any(|path| !path.is_absolute()) {
            return Err(NixError::Output {
                command: describe(&self.nix, args),
                problem: "expected the absolute store paths of the built outputs".into(),
                output: excerpt(&captured.stdout),
            });
        }
        Ok(paths)
    }

    /// `nix-instantiate --parse FILE`: a syntax error becomes `FILE:LINE:COL: message`.
    pub fn parse_file(&self, file: &Path) -> Result<(), NixError> {
        let argv = vec!["--parse".to_string(), file.display().to_string()];
        match run(&self.nix_instantiate, &argv, false) {
            Ok(_) => Ok(()),
            Err(NixError::Failed { message, .. }) => Err(parse_error(file, &message)),
            Err(other) => Err(other),
        }
    }
}

/// Nix prints a syntax error as `error: MESSAGE` and, a few lines below, `at FILE:LINE:COL:`.
/// The position is taken from there; without one the message stands alone at line 1.
fn parse_error(file: &Path, message: &str) -> NixError {
    let first = message
        .lines()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .unwrap_or(message.trim())
        .to_string();
    let position = message.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("at ")?.strip_suffix(':')?;
        let mut parts = rest.rsplitn(3, ':');
        let column = parts.next()?.parse().ok()?;
        let line = parts.next()?.parse().ok()?;
        Some((line, column))
    });
    let (line, column) = position.unwrap_or((1, 1));
    NixError::Parse {
        file: file.display().to_string(),
        line,
        column,
        message: first,
    }
}

fn describe(program: &OsString, args: &[String]) -> String {
    let mut text = program.to_string_lossy().into_owned();
    for arg in args {
        text.push(' ');
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
            text.push_str(&format!("'{}'", arg.replace('\'', r"'\''")));
        } else {
            text.push_str(arg);
        }
    }
    text
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return "(nothing)".into();
    }
    text.chars().take(2000).collect()
}

/// Nix's error: from its first `error:` line to the end, which is what Nix itself shows people;
/// when there is none (a crash, a stand-in), the last lines.
pub fn error_message(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    if let Some(start) = lines.iter().position(|line| line.starts_with("error:")) {
        return lines[start..].join("\n").trim_end().to_string();
    }
    let start = lines.len().saturating_sub(TAIL_LINES);
    let tail = lines[start..].join("\n");
    if tail.trim().is_empty() {
        "(it printed nothing on stderr)".into()
    } else {
        tail.trim_end().to_string()
    }
}

fn run(program: &OsString, args: &[String], stream: bool) -> Result<Captured, NixError> {
    let name = program.to_string_lossy().into_owned();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                NixError::Missing {
                    program: name.clone(),
                }
            } else {
                NixError::Spawn {
                    program: name.clone(),
                    source,
                }
            }
        })?;
    // stderr is read on a thread of its own so that neither pipe can fill up and block Nix
    // while the other is read.
    let stderr = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut kept = String::new();
        let mut lines = BufReader::new(stderr);
        let mut line = Vec::new();
        while lines.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            if stream {
                let mut out = std::io::stderr().lock();
                let _ = out.write_all(&line);
                let _ = out.flush();
            }
            kept.push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
        kept
    });
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        stdout = String::from_utf8_lossy(&bytes).into_owned();
    }
    let status = child.wait().map_err(|source| NixError::Spawn {
        program: name.clone(),
        source,
    })?;
    let stderr = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(NixError::Failed {
            command: describe(program, args),
            status: status.to_string(),
            message: error_message(&stderr),
        });
    }
    Ok(Captured { stdout, stderr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_is_taken_from_nixs_first_error_line() {
        let stderr = "building...\nsome log\nerror: builder for '/nix/store/x.drv' failed\n       last 10 log lines:\n       > boom\n";
        assert_eq!(
            error_message(stderr),
            "error: builder for '/nix/store/x.drv' failed\n       last 10 log lines:\n       > boom"
        );
        assert_eq!(error_message("a\nb\n"), "a\nb");
        assert_eq!(error_message(""), "(it printed nothing on stderr)");
    }

    #[test]
    fn a_syntax_error_gets_file_line_and_column() {
        let stderr = "error: syntax error, unexpected '}', expecting ';'\n\n       at /tmp/bad.nix:3:1:\n\n            2|   enable = true\n";
        let error = parse_error(Path::new("/tmp/bad.nix"), stderr);
        assert_eq!(
            error.to_string(),
            "/tmp/bad.nix:3:1: syntax error, unexpected '}', expecting ';'"
        );
    }

    #[test]
    fn arguments_with_spaces_are_quoted_in_messages() {
        let text = describe(
            &OsString::from("nix"),
            &["eval".into(), "--expr".into(), "a b".into()],
        );
        assert_eq!(text, "nix eval --expr 'a b'");
    }
}
