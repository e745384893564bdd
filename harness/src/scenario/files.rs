//! Finding scenario files: by path, or by name in the scenario directory.

use std::path::{Path, PathBuf};

/// The scenario directory in the working directory, the first place searched by default.
pub const DEFAULT_DIR: &str = "scenarios";
/// The environment variable naming the scenario directory, as `--scenarios` does.
pub const DIR_VARIABLE: &str = "BITPOLL_HARNESS_SCENARIOS";
/// Where the package installs the shipped scenarios, relative to the binary's directory.
const INSTALLED_DIR: &str = "../share/bitpoll-harness/scenarios";

/// The scenario directory: the one given (`--scenarios`, or else the environment variable),
/// or the first that exists of scenarios/ in the working directory, the package's
/// share/bitpoll-harness/scenarios beside the binary, and the checkout the binary was built
/// from. So the shipped scenarios are found from anywhere, and a local directory still wins.
pub fn directory(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(dir) = given {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os(DIR_VARIABLE).filter(|value| !value.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let mut candidates = vec![PathBuf::from(DEFAULT_DIR)];
    if let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        candidates.push(bin.join(INSTALLED_DIR));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios"));
    candidates
        .iter()
        .find(|dir| dir.is_dir())
        .cloned()
        .ok_or_else(|| {
            let searched: Vec<String> = candidates
                .iter()
                .map(|dir| dir.display().to_string())
                .collect();
            format!(
                "no scenario directory: none of {} exists; pass --scenarios DIR or set {DIR_VARIABLE}",
                searched.join(", ")
            )
        })
}

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
    let known = match in_dir(dir) {
        Ok(files) if !files.is_empty() => format!(
            "the scenarios in {} are: {}",
            dir.display(),
            files
                .iter()
                .filter_map(|file| file.file_stem())
                .map(|stem| stem.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Ok(_) => format!("{} holds no scenario", dir.display()),
        Err(error) => error,
    };
    Err(format!(
        "no scenario `{argument}`: it is not a file and {} does not exist; {known}",
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
