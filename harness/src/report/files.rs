//! Reports read back from JSON files, of either kind: a single run's or a fleet run's (told by
//! `kind`; version 1 reports have none and are single runs).

use std::path::Path;

use super::fleet::FleetReport;
use super::{Report, SCHEMA_VERSION};

#[derive(Debug, Clone)]
pub enum ReportFile {
    Run(Report),
    Fleet(FleetReport),
}

#[derive(Debug, thiserror::Error)]
pub enum ReportFileError {
    #[error("--from-reports {dir}: cannot read the directory: {source}")]
    Directory { dir: String, source: std::io::Error },
    #[error("--from-reports {dir}: no *.json reports there; write them with `bitpoll-harness run ... --report DIR/NAME.json`")]
    Empty { dir: String },
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not a bitpoll-harness JSON report ({problem})")]
    Invalid { file: String, problem: String },
}

/// Parses one report; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<ReportFile, ReportFileError> {
    let invalid = |problem: String| ReportFileError::Invalid {
        file: file.to_string(),
        problem,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let version = value
        .get("schema_version")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if version > u64::from(SCHEMA_VERSION) {
        return Err(invalid(format!(
            "schema_version {version} is newer than this harness reads ({SCHEMA_VERSION}); use the harness that wrote it, or a newer one"
        )));
    }
    let kind = value
        .get("kind")
        .and_then(|kind| kind.as_str())
        .unwrap_or("run");
    if !matches!(kind, "run" | "fleet") {
        return Err(invalid(format!(
            "`kind` is `{kind}`; expected `run` or `fleet`"
        )));
    }
    if kind == "fleet" {
        serde_json::from_value(value)
            .map(ReportFile::Fleet)
            .map_err(|e| invalid(format!("a fleet report: {e}")))
    } else {
        serde_json::from_value(value)
            .map(ReportFile::Run)
            .map_err(|e| invalid(e.to_string()))
    }
}

/// Every report (`*.json`) in a directory, by file name, in order.
pub fn in_dir(dir: &Path) -> Result<Vec<(String, ReportFile)>, ReportFileError> {
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|source| ReportFileError::Directory {
        dir: shown.clone(),
        source,
    })?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json") && path.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ReportFileError::Empty { dir: shown });
    }
    files
        .into_iter()
        .map(|path| {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| ReportFileError::Read {
                file: file.clone(),
                source,
            })?;
            parse(&file, &text).map(|report| (file, report))
        })
        .collect()
}
