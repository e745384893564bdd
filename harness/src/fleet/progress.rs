//! Progress of a fleet run, as people expect of a fleet tool: on a terminal one live line per
//! host (what it is doing, its steps passed and failed so far), redrawn in place; elsewhere
//! (a CI log, a pipe) plain lines prefixed with the host's name, one per event.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::host_run::Event;
use crate::report::fleet::HostStatus;
use crate::report::{human, Status};
use crate::scenario::duration::format_duration;

/// Where progress goes: stdout for people, stderr when stdout carries the JSON report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

struct HostLine {
    name: String,
    target: String,
    state: String,
    /// The scenario running now, for the live line's `scenario: step`.
    scenario: String,
    passed: usize,
    failed: usize,
    skipped: usize,
    started: Option<Instant>,
    done: bool,
}

pub struct Progress {
    stream: Stream,
    live: bool,
    hosts: Vec<HostLine>,
    drawn: usize,
    last_draw: Option<Instant>,
    width: usize,
}

impl Progress {
    /// `hosts` are (name, target) in inventory order; live redrawing only on a terminal.
    pub fn new(stream: Stream, hosts: Vec<(String, String)>) -> Self {
        let live = match stream {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        };
        Self::with_mode(stream, hosts, live)
    }

    pub fn with_mode(stream: Stream, hosts: Vec<(String, String)>, live: bool) -> Self {
        let hosts = hosts
            .into_iter()
            .map(|(name, target)| HostLine {
                name,
                target,
                state: "waiting".into(),
                scenario: String::new(),
                passed: 0,
                failed: 0,
                skipped: 0,
                started: None,
                done: false,
            })
            .collect();
        Self {
            stream,
            live,
            hosts,
            drawn: 0,
            last_draw: None,
            width: terminal_width(stream),
        }
    }

    pub fn observe(&mut self, index: usize, event: Event) {
        let Some(host) = self.hosts.get_mut(index) else {
            return;
        };
        let plain = match event {
            Event::Connecting => {
                host.started = Some(Instant::now());
                host.state = format!("connecting to {}", host.target);
                format!("connecting to {}", host.target)
            }
            Event::ScenarioStarted(name) => {
                host.state = format!("{name}: starting");
                host.scenario.clone_from(&name);
                format!("scenario {name}")
            }
            Event::Step(step) => {
                match step.status {
                    Status::Passed => host.passed += 1,
                    Status::Failed => host.failed += 1,
                    Status::Skipped => host.skipped += 1,
                }
                // Steps report when they end: the line names the last one finished.
                host.state = format!("{}: after `{}`", host.scenario, step.name);
                // The details of failures come once, grouped by host, at the end.
                human::step_lines(&step)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start()
                    .to_string()
            }
            Event::ScenarioFinished(report) => human::scenario_footer(&report),
            Event::Finished(report) => {
                host.done = true;
                let took = format_duration(Duration::from_millis(report.duration_ms));
                host.state = match report.status {
                    HostStatus::Passed => format!("passed in {took}"),
                    HostStatus::Failed => format!("FAILED in {took}"),
                    HostStatus::Unreachable => {
                        format!("UNREACHABLE: {}", report.reason.clone().unwrap_or_default())
                    }
                    HostStatus::NotRun => "not run (--fail-fast)".into(),
                };
                format!("done: {}", host.state)
            }
        };
        if self.live {
            let finished = self.hosts.iter().all(|host| host.done);
            let due = self
                .last_draw
                .map_or(true, |last| last.elapsed() >= Duration::from_millis(100));
            if due || finished {
                self.draw();
            }
        } else {
            let name = &self.hosts[index].name;
            self.write(&format!("[{name}] {plain}\n"));
        }
    }

    /// Nothing happened for a while: a live view redraws, so running hosts' times advance and an
    /// update held back by the redraw limit shows.
    pub fn tick(&mut self) {
        if self.live && self.drawn > 0 {
            self.draw();
        }
    }

    /// The last live frame, so the final state of every host stays on screen.
    pub fn finish(&mut self) {
        if self.live {
            self.draw();
        }
    }

    fn draw(&mut self) {
        // Read every time: a terminal narrowed during the run would wrap the lines, and the
        // cursor would then go up too few rows.
        let (width, rows) = terminal_size(self.stream);
        self.width = width;
        let name_width = self.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
        let mut frame = String::new();
        if self.drawn > 0 {
            // Back to the first host's line, then each line is cleared as it is rewritten.
            frame.push_str(&format!("\x1b[{}A", self.drawn));
        }
        // More hosts than rows would scroll the first lines out of reach of the cursor: the
        // running hosts are shown first, the rest counted on one line.
        let room = rows.saturating_sub(2).max(1);
        let mut shown: Vec<&HostLine> = self
            .hosts
            .iter()
            .filter(|h| h.started.is_some() && !h.done)
            .collect();
        shown.extend(self.hosts.iter().filter(|h| h.done));
        shown.extend(self.hosts.iter().filter(|h| h.started.is_none()));
        let hidden = shown.len().saturating_sub(room);
        if hidden > 0 {
            shown.truncate(room - 1);
        }
        let mut lines = 0;
        for host in shown {
            let elapsed = match (host.started, host.done) {
                (Some(started), false) => {
                    format!(" {}", format_duration(started.elapsed()))
                }
                _ => String::new(),
            };
            let line = format!(
                "{:name_width$}  {:>3} passed {:>2} failed{}  {}",
                host.name, host.passed, host.failed, elapsed, host.state
            );
            frame.push_str("\x1b[2K");
            frame.push_str(&truncate(&printable(&line), self.width));
            frame.push('\n');
            lines += 1;
        }
        if hidden > 0 {
            let done = self.hosts.iter().filter(|h| h.done).count();
            frame.push_str("\x1b[2K");
            frame.push_str(&truncate(
                &format!(
                    "… {} more host(s) not shown; {done} of {} done",
                    hidden + 1,
                    self.hosts.len()
                ),
                self.width,
            ));
            frame.push('\n');
            lines += 1;
        }
        // A frame shorter than the last leaves its old lines below: clear them.
        for _ in lines..self.drawn {
            frame.push_str("\x1b[2K\n");
        }
        self.drawn = lines.max(self.drawn);
        self.last_draw = Some(Instant::now());
        self.write(&frame);
    }

    fn write(&self, text: &str) {
        let _ = match self.stream {
            Stream::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|()| out.flush())
            }
            Stream::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
        };
    }
}

/// A live line longer than the terminal would wrap and break the redrawing.
fn truncate(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Control characters (a reason with a newline, an escape sequence in output) would break the
/// line arithmetic of the redraw.
fn printable(line: &str) -> String {
    line.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn terminal_width(stream: Stream) -> usize {
    terminal_size(stream).0
}

/// Columns and rows of the terminal (or $COLUMNS and 100 by 50 when that cannot be read).
fn terminal_size(stream: Stream) -> (usize, usize) {
    let fd = match stream {
        Stream::Stdout => libc::STDOUT_FILENO,
        Stream::Stderr => libc::STDERR_FILENO,
    };
    // SAFETY: TIOCGWINSZ fills the winsize struct it is given and touches nothing else.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0;
    let from_env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    if ok && size.ws_col > 0 && size.ws_row > 0 {
        (usize::from(size.ws_col), usize::from(size.ws_row))
    } else {
        (from_env("COLUMNS", 100), from_env("LINES", 50))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_to_the_width() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
