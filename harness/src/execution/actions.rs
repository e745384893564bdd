//! Performs one attempt of a rendered step: the action, its expectations and its captures.

use std::sync::Arc;
use std::time::Duration;

use super::capture::{capture, Source};
use super::expect::{self, excerpt, FileStat};
use crate::report::Detail;
use crate::scenario::duration::format_duration;
use crate::scenario::{Action, Step};
use crate::target::http::HttpClient;
use crate::target::{Command, Output, Target, TargetError};

/// How much of an output a report keeps.
const OUTPUT_EXCERPT_CHARS: usize = 2000;

pub struct Context {
    pub target: Arc<dyn Target>,
    pub http: HttpClient,
}

#[derive(Debug, Default)]
pub struct Attempt {
    pub failures: Vec<String>,
    pub detail: Detail,
    pub captured: Vec<(String, String)>,
    /// A failure that waiting cannot mend (a unit that entered `failed`): stop retrying.
    pub fatal: bool,
}

impl Attempt {
    fn failed(detail: Detail, message: String) -> Self {
        Self {
            failures: vec![message],
            detail,
            ..Self::default()
        }
    }
}

/// Runs a blocking target call off the async runtime's threads.
pub async fn exec(target: &Arc<dyn Target>, command: Command) -> Result<Output, TargetError> {
    let target = Arc::clone(target);
    tokio::task::spawn_blocking(move || target.exec(&command))
        .await
        .unwrap_or_else(|join_error| {
            Err(TargetError::Io(std::io::Error::other(
                join_error.to_string(),
            )))
        })
}

pub async fn attempt(step: &Step, context: &Context, timeout: Duration) -> Attempt {
    let mut attempt = match &step.action {
        Action::Run { argv, stdin } => {
            let mut command = Command::new(argv.clone(), timeout);
            command.stdin = stdin.clone().map(String::into_bytes);
            run_command(step, context, command, timeout).await
        }
        Action::Sh { script, stdin } => {
            let mut command = Command::new(["sh", "-c", script.as_str()], timeout);
            command.stdin = stdin.clone().map(String::into_bytes);
            run_command(step, context, command, timeout).await
        }
        Action::Http(request) => {
            let url = context
                .http
                .url(&request.path)
                .unwrap_or_else(|_| request.path.clone());
            let mut detail = Detail {
                action: format!("{} {url}", request.method),
                ..Detail::default()
            };
            match context.http.send(request, timeout).await {
                Err(message) => Attempt::failed(detail, message),
                Ok(response) => {
                    detail.http_status = Some(response.status);
                    detail.output = excerpt(&response.body, OUTPUT_EXCERPT_CHARS);
                    let failures = expect::check_http(&step.expect, &response);
                    let mut attempt = Attempt {
                        failures,
                        detail,
                        ..Attempt::default()
                    };
                    take_captures(step, &Source::Http(&response), &mut attempt);
                    attempt
                }
            }
        }
        Action::File { path } => check_file(step, context, path, timeout).await,
        Action::Unit { name } => check_unit(step, context, name, timeout, false).await,
        Action::WaitForUnit { name } => check_unit(step, context, name, timeout, true).await,
    };
    if !attempt.failures.is_empty() {
        attempt.captured.clear();
    }
    attempt
}

async fn run_command(
    step: &Step,
    context: &Context,
    command: Command,
    timeout: Duration,
) -> Attempt {
    let mut detail = Detail {
        action: command.display(),
        ..Detail::default()
    };
    match exec(&context.target, command).await {
        Err(error) => Attempt::failed(detail, error.to_string()),
        Ok(output) => {
            detail.exit_code = output.exit_code;
            let mut combined = output.stdout_text();
            let stderr = output.stderr_text();
            if !stderr.is_empty() {
                combined.push_str("\n--- stderr ---\n");
                combined.push_str(&stderr);
            }
            detail.output = excerpt(&combined, OUTPUT_EXCERPT_CHARS);
            let failures = expect::check_command(&step.expect, &output, &format_duration(timeout));
            let mut attempt = Attempt {
                failures,
                detail,
                ..Attempt::default()
            };
            take_captures(step, &Source::Command(&output), &mut attempt);
            attempt
        }
    }
}

fn take_captures(step: &Step, source: &Source, attempt: &mut Attempt) {
    if !attempt.failures.is_empty() {
        return;
    }
    for spec in &step.captures {
        match capture(spec, source) {
            Ok(value) => attempt.captured.push((spec.name.clone(), value)),
            Err(message) => attempt.failures.push(message),
        }
    }
}

/// Runs a command the harness needs for an observation (stat, systemctl), keeping what was run
/// and its exit code for the report; a target error becomes the failed attempt.
async fn exec_observed(context: &Context, command: Command) -> Result<(Output, Detail), Attempt> {
    let mut detail = Detail {
        action: command.display(),
        ..Detail::default()
    };
    match exec(&context.target, command).await {
        Ok(output) => {
            detail.exit_code = output.exit_code;
            Ok((output, detail))
        }
        Err(error) => Err(Attempt::failed(detail, error.to_string())),
    }
}

async fn check_file(step: &Step, context: &Context, path: &str, timeout: Duration) -> Attempt {
    // GNU stat: type, octal mode, owner and group names, without following a final symlink.
    let command = Command::new(["stat", "-c", "%F|%a|%U|%G", "--", path], timeout);
    let (output, detail) = match exec_observed(context, command).await {
        Ok(observed) => observed,
        Err(attempt) => return attempt,
    };
    let stat = if output.exit_code == Some(0) {
        match parse_stat(&output.stdout_text()) {
            Some(stat) => Some(stat),
            None => {
                return Attempt::failed(
                    detail,
                    format!("cannot read the output of stat: {:?}", output.stdout_text()),
                )
            }
        }
    } else if output.stderr_text().contains("No such file or directory") {
        None
    } else {
        let message = format!("cannot stat {path}: {}", output.stderr_text().trim());
        return Attempt::failed(detail, message);
    };
    let mut content = None;
    if step.expect.content.is_some() && stat.as_ref().is_some_and(|s| s.file_type == "file") {
        let target = Arc::clone(&context.target);
        let owned_path = path.to_string();
        let read =
            tokio::task::spawn_blocking(move || target.read_file(&owned_path, timeout)).await;
        match read {
            Ok(Ok(bytes)) => content = Some(String::from_utf8_lossy(&bytes).into_owned()),
            Ok(Err(error)) => {
                return Attempt::failed(detail, format!("cannot read {path}: {error}"))
            }
            Err(error) => return Attempt::failed(detail, format!("cannot read {path}: {error}")),
        }
    }
    let failures = expect::check_file(&step.expect, stat.as_ref(), content.as_deref());
    Attempt {
        failures,
        detail,
        ..Attempt::default()
    }
}

pub fn parse_stat(line: &str) -> Option<FileStat> {
    let mut parts = line.trim_end().split('|');
    let kind = parts.next()?;
    let mode = parts.next()?;
    let owner = parts.next()?;
    let group = parts.next()?;
    let file_type = match kind {
        "regular file" | "regular empty file" => "file",
        "directory" => "directory",
        "symbolic link" => "symlink",
        other => other,
    };
    Some(FileStat {
        file_type: file_type.to_string(),
        mode: format!("{mode:0>4}"),
        owner: owner.to_string(),
        group: group.to_string(),
    })
}

async fn check_unit(
    step: &Step,
    context: &Context,
    unit: &str,
    timeout: Duration,
    waiting: bool,
) -> Attempt {
    let mut wanted = vec![
        "LoadState",
        "ActiveState",
        "SubState",
        "UnitFileState",
        "Result",
    ];
    wanted.extend(step.expect.properties.iter().map(|(name, _)| name.as_str()));
    let command = Command::new(
        [
            "systemctl",
            "show",
            unit,
            "--no-pager",
            &format!("--property={}", wanted.join(",")),
        ],
        timeout,
    );
    let (output, mut detail) = match exec_observed(context, command).await {
        Ok(observed) => observed,
        Err(attempt) => return attempt,
    };
    detail.output = excerpt(&output.stdout_text(), OUTPUT_EXCERPT_CHARS);
    if output.exit_code != Some(0) {
        let message = format!("systemctl show failed: {}", output.stderr_text().trim());
        return Attempt::failed(detail, message);
    }
    let properties: Vec<(String, String)> = output
        .stdout_text()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    let failures = expect::check_unit(&step.expect, &properties, true);
    let expected_active = step.expect.active.as_deref().unwrap_or("active");
    let has_failed = properties
        .iter()
        .any(|(key, value)| key == "ActiveState" && value == "failed");
    Attempt {
        fatal: waiting && has_failed && expected_active != "failed",
        failures,
        detail,
        ..Attempt::default()
    }
}

/// The unit's recent journal, for the report of a failed unit step.
pub async fn journal(context: &Context, unit: &str) -> Option<String> {
    let command = Command::new(
        [
            "journalctl",
            "--unit",
            unit,
            "--lines",
            "25",
            "--no-pager",
            "--output",
            "short-iso",
        ],
        Duration::from_secs(15),
    );
    let output = exec(&context.target, command).await.ok()?;
    let text = output.stdout_text();
    (!text.trim().is_empty()).then(|| excerpt(&text, OUTPUT_EXCERPT_CHARS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_normalised() {
        let stat = parse_stat("regular file|600|bitpoll|bitpoll\n").unwrap();
        assert_eq!(stat.file_type, "file");
        assert_eq!(stat.mode, "0600");
        assert_eq!(
            parse_stat("directory|2750|root|bitpoll").unwrap().mode,
            "2750"
        );
        assert!(parse_stat("garbage").is_none());
    }
}
