//! Finding scenario files: by path, or by name in the scenario directory.

use std::path::{Path, PathBuf};

/// The directory `list` and `run NAME` look in when none is given.
pub const DEFAULT_DIR: &str = "scenarios";

/// A scenario argument as a path: an existing file, or `DIR/NAME.toml`.
pub fn resolve(argument: &str, dir: &Path) -> Result<PathBuf, String> {
    let path = PathBuf::from(argument);
    if path.is_file() {
        return Ok(path);
    }
    let by_name = dir.join(format!("{argument}.toml"));
    if by_name.is_file() {
        return Ok(by_name);
    }
    Err(format!(
        "no scenario `{argument}`: it is not a file and {} does not exist; `bitpoll-harness list` shows the scenarios",
        by_name.display()
    ))
}

/// The `.toml` files of a directory, sorted by name.
pub fn in_dir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|error| format!("cannot read scenario directory {}: {error}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml") && path.is_file())
        .collect();
    files.sort();
    Ok(files)
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
