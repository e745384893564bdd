//! The scenario model: what a parsed scenario file says, with every string still a template.

use std::path::PathBuf;
use std::time::Duration;

/// Variables every run defines, whatever the scenario says.
pub const BUILTIN_VARS: &[&str] = &["run_id", "base_url", "scenario", "target"];

/// The default time a step's action may take before it fails.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Scenario {
    pub file: PathBuf,
    pub name: String,
    pub summary: String,
    pub tags: Vec<String>,
    /// The whole scenario's time budget; steps left when it runs out fail.
    pub timeout: Option<Duration>,
    /// `[vars]` in file order.
    pub vars: Vec<(String, String)>,
    pub steps: Vec<Step>,
}

impl Scenario {
    pub fn has_http_steps(&self) -> bool {
        self.steps
            .iter()
            .any(|step| matches!(step.action, Action::Http(_)))
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub line: usize,
    pub action: Action,
    pub expect: Expect,
    pub captures: Vec<Capture>,
    pub retry: Option<Retry>,
    /// Run the step this many times; every attempt must pass (a service stays up throughout).
    pub repeat: Option<Repeat>,
    /// A cleanup step: it runs even after an earlier step failed.
    pub always: bool,
    pub timeout: Duration,
    /// What the target must offer for this step to run; otherwise the step is skipped.
    pub requires: Vec<Capability>,
    /// Record the step's duration in milliseconds as a metric of this name.
    pub metric: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    Systemd,
    Root,
}

impl Capability {
    pub const NAMES: &'static [&'static str] = &["systemd", "root"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "systemd" => Some(Self::Systemd),
            "root" => Some(Self::Root),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Systemd => "systemd",
            Self::Root => "root",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Action {
    Run {
        argv: Vec<String>,
        stdin: Option<String>,
    },
    Sh {
        script: String,
        stdin: Option<String>,
    },
    Http(HttpRequest),
    File {
        path: String,
    },
    Unit {
        name: String,
    },
    WaitForUnit {
        name: String,
    },
}

impl Action {
    pub const KEYS: &'static [&'static str] =
        &["run", "sh", "http", "file", "unit", "wait_for_unit"];

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Run { .. } => "run",
            Self::Sh { .. } => "sh",
            Self::Http(_) => "http",
            Self::File { .. } => "file",
            Self::Unit { .. } => "unit",
            Self::WaitForUnit { .. } => "wait_for_unit",
        }
    }

    /// The capabilities the action needs whatever the step declares.
    pub fn implied_requirements(&self) -> &'static [Capability] {
        match self {
            Self::Unit { .. } | Self::WaitForUnit { .. } => &[Capability::Systemd],
            _ => &[],
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// Form fields in order; a field may repeat.
    pub form: Vec<(String, String)>,
    pub body: Option<String>,
    pub follow_redirects: bool,
}

/// A check on a piece of text. Every listed condition must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextMatch {
    pub equals: Option<String>,
    pub contains: Vec<String>,
    pub not_contains: Vec<String>,
    pub regex: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderExpect {
    pub name: String,
    /// `None` asserts the header is absent.
    pub matches: Option<TextMatch>,
}

/// Expectations; the parser admits only the ones that fit the step's action.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expect {
    // run, sh
    pub exit: Option<i32>,
    pub stdout: Option<TextMatch>,
    pub stderr: Option<TextMatch>,
    // http
    pub status: Vec<u16>,
    pub headers: Vec<HeaderExpect>,
    pub body: Option<TextMatch>,
    // file
    pub exists: Option<bool>,
    pub file_type: Option<String>,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub content: Option<TextMatch>,
    // unit
    pub active: Option<String>,
    pub enabled: Option<String>,
    pub properties: Vec<(String, TextMatch)>,
}

#[derive(Debug, Clone)]
pub struct Capture {
    pub name: String,
    pub source: CaptureSource,
    /// Applied to what the source yields; the first group, or the whole match without groups.
    pub regex: Option<String>,
    /// Also record the captured value, a number, as a metric named after the capture.
    pub metric: bool,
}

#[derive(Debug, Clone)]
pub enum CaptureSource {
    /// An element of the HTML body; its attribute, or its text when `attr` is `None`.
    Css {
        selector: String,
        attr: Option<String>,
    },
    Header(String),
    Body,
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy)]
pub struct Repeat {
    pub count: u32,
    pub interval: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub timeout: Duration,
    pub interval: Duration,
}
