//! The `local` target: processes on this machine.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::target::{Command, Output, Target, TargetError};

#[derive(Debug, Default)]
pub struct LocalTarget;

impl Target for LocalTarget {
    fn describe(&self) -> String {
        "local".into()
    }

    fn exec(&self, command: &Command) -> Result<Output, TargetError> {
        let (program, args) = command
            .argv
            .split_first()
            .expect("the parser rejects an empty argv");
        let mut child = std::process::Command::new(program)
            .args(args)
            .stdin(if command.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills the whole tree (`sh -c` and its children)
            // and no grandchild keeps the output pipes open.
            .process_group(0)
            .spawn()
            .map_err(|source| TargetError::Spawn {
                program: program.clone(),
                source,
            })?;
        let stdin_writer = command.stdin.clone().map(|input| {
            let mut stdin = child.stdin.take().expect("stdin was piped");
            thread::spawn(move || {
                // A command that exits without reading its input is not an error here.
                let _ = stdin.write_all(&input);
            })
        });
        let stdout = drain(child.stdout.take().expect("stdout was piped"));
        let stderr = drain(child.stderr.take().expect("stderr was piped"));
        let (exit_code, timed_out) = wait_with_deadline(&mut child, command.timeout)?;
        if let Some(writer) = stdin_writer {
            let _ = writer.join();
        }
        Ok(Output {
            exit_code,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
            timed_out,
        })
    }

    fn read_file(&self, path: &str, _timeout: Duration) -> Result<Vec<u8>, TargetError> {
        Ok(std::fs::read(path)?)
    }
}

fn drain(mut stream: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stream.read_to_end(&mut buffer);
        buffer
    })
}

fn wait_with_deadline(
    child: &mut Child,
    timeout: Duration,
) -> Result<(Option<i32>, bool), TargetError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status.code(), false));
        }
        if Instant::now() >= deadline {
            kill_group(child);
            child.wait()?;
            return Ok((None, true));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn kill_group(child: &Child) {
    let group = child.id() as libc::pid_t;
    // SAFETY: killpg only sends a signal; the group is the child's own, made by process_group(0).
    unsafe {
        libc::killpg(group, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_exit_code_and_stdin() {
        let command = Command::new(
            ["sh", "-c", "cat; echo err >&2; exit 3"],
            Duration::from_secs(5),
        )
        .with_stdin("hello");
        let output = LocalTarget.exec(&command).unwrap();
        assert_eq!(output.exit_code, Some(3));
        assert_eq!(output.stdout_text(), "hello");
        assert_eq!(output.stderr_text(), "err\n");
        assert!(!output.timed_out);
    }

    #[test]
    fn a_hanging_command_tree_is_killed_at_its_timeout() {
        let started = Instant::now();
        let command = Command::new(
            ["sh", "-c", "sleep 30 & sleep 30"],
            Duration::from_millis(300),
        );
        let output = LocalTarget.exec(&command).unwrap();
        assert!(output.timed_out);
        assert_eq!(output.exit_code, None);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_program_names_itself() {
        let command = Command::new(["definitely-not-a-program-here"], Duration::from_secs(1));
        let error = LocalTarget.exec(&command).unwrap_err().to_string();
        assert!(
            error.starts_with("cannot start `definitely-not-a-program-here`"),
            "{error}"
        );
    }
}
