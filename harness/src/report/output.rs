//! What `run` and `vm` print and write once a report exists, and where progress goes: the
//! same for both, so their outputs stay interchangeable.

use std::path::Path;

use anyhow::Context as _;

use clap::ValueEnum;

use crate::report::{junit, Report};

/// What stdout carries: per-step lines for people, or the JSON report for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// Progress lines go to stdout for people, and to stderr when stdout carries the JSON report.
pub fn progress(format: Format, text: &str) {
    match format {
        Format::Human => println!("{text}"),
        Format::Json => eprintln!("{text}"),
    }
}

/// Writes the JSON report and JUnit files asked for, then prints the summary line (for
/// people) or the JSON report (for machines, with the summary on stderr).
pub fn emit(
    report: &Report,
    format: Format,
    report_path: Option<&Path>,
    junit_path: Option<&Path>,
) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report).context("cannot serialize the report")?;
    if let Some(path) = report_path {
        write_atomic(path, json.as_bytes())
            .with_context(|| format!("cannot write the report {}", path.display()))?;
    }
    if let Some(path) = junit_path {
        write_atomic(path, junit::render(report).as_bytes())
            .with_context(|| format!("cannot write the JUnit file {}", path.display()))?;
    }
    match format {
        Format::Human => println!("{}", report.summary.line()),
        Format::Json => {
            println!("{json}");
            eprintln!("{}", report.summary.line());
        }
    }
    Ok(())
}

/// Writes a file through a temporary name in the same directory and a rename, so a reader
/// never sees half a report and a failed write never replaces a good one.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, contents)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}
