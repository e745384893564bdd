//! Naming things in this project's flake: the flake reference, the system, the attribute paths
//! of its checks, and the Nix expressions that call its `lib` functions with a user's file.

use std::path::{Path, PathBuf};

/// The flake whose checks and lib the Nix commands use.
pub const DEFAULT_FLAKE: &str = ".";

#[derive(Debug, thiserror::Error)]
pub enum FlakeError {
    #[error("--flake `{0}` must be a flake reference without an attribute (no `#`), such as `.` or `github:OWNER/bitpoll-nix`")]
    Fragment(String),
    #[error("--flake {path}: {source}; give the directory of a checkout of this flake")]
    LocalPath {
        path: String,
        source: std::io::Error,
    },
    #[error("scenario name `{0}` cannot name a check: it must start with a letter and hold only letters, digits, - and _")]
    ScenarioName(String),
    #[error("this machine ({arch}-{os}) is not a system Nix builds for here; pass --system, such as x86_64-linux")]
    UnknownSystem { arch: String, os: String },
}

/// A flake reference as the user gave it, and as `builtins.getFlake` needs it: a local path
/// made absolute, since `getFlake` does not resolve relative paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlakeRef {
    pub given: String,
    pub absolute: String,
}

impl FlakeRef {
    pub fn parse(given: &str) -> Result<Self, FlakeError> {
        if given.contains('#') {
            return Err(FlakeError::Fragment(given.to_string()));
        }
        let absolute = if is_local_path(given) {
            let path = given.strip_prefix("path:").unwrap_or(given);
            let canonical =
                std::fs::canonicalize(path).map_err(|source| FlakeError::LocalPath {
                    path: given.to_string(),
                    source,
                })?;
            canonical.display().to_string()
        } else {
            given.to_string()
        };
        Ok(Self {
            given: given.to_string(),
            absolute,
        })
    }

    /// `REF#ATTR` for the nix command line, with the reference as the user gave it.
    pub fn installable(&self, attribute: &str) -> String {
        format!("{}#{attribute}", self.given)
    }
}

/// A reference without a scheme (`.`, `../bitpoll-nix`, `/srv/flake`) or with `path:` names
/// a directory here.
fn is_local_path(reference: &str) -> bool {
    reference.starts_with('.')
        || reference.starts_with('/')
        || reference.starts_with("path:")
        || !reference.contains(':')
}

/// The Nix system of this machine, as flakes name it.
pub fn current_system() -> Result<String, FlakeError> {
    let arch = std::env::consts::ARCH;
    let os = std::env::consts::OS;
    match (arch, os) {
        ("x86_64" | "aarch64" | "i686" | "riscv64", "linux" | "macos") => Ok(format!(
            "{arch}-{}",
            if os == "macos" { "darwin" } else { os }
        )),
        _ => Err(FlakeError::UnknownSystem {
            arch: arch.into(),
            os: os.into(),
        }),
    }
}

/// The name of a scenario's check; the name must be one a scenario file may have
/// (nix-tests/discover.nix refuses the others).
pub fn check_name(scenario: &str) -> Result<String, FlakeError> {
    let mut chars = scenario.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(format!("vm-{scenario}"))
    } else {
        Err(FlakeError::ScenarioName(scenario.to_string()))
    }
}

/// A Nix string literal holding `text` exactly: `\`, `"` and `${` are escaped.
pub fn nix_string(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace("${", "\\${");
    format!("\"{escaped}\"")
}

/// The arguments every `lib` function of the flake takes from the command line: the system and
/// the administrator's module, given as a path (`/. + "FILE"`) rather than `import FILE` so that
/// the module system names the file in its errors, as `imports = [ ./file.nix ]` would.
fn lib_arguments(system: &str, module: &Path, extra: &str) -> String {
    format!(
        "{{ system = {}; module = /. + {};{extra} }}",
        nix_string(system),
        nix_string(&module.display().to_string())
    )
}

fn get_flake(flake: &FlakeRef) -> String {
    format!("(builtins.getFlake {})", nix_string(&flake.absolute))
}

/// `lib.inspectConfiguration` of the flake applied to the module (`validate --eval-only`).
pub fn inspect_expression(flake: &FlakeRef, system: &str, module: &Path) -> String {
    format!(
        "{}.lib.inspectConfiguration {}",
        get_flake(flake),
        lib_arguments(system, module, "")
    )
}

/// The names (`vm-NAME`) of every validation test of the module.
pub fn validation_names_expression(flake: &FlakeRef, system: &str, module: &Path) -> String {
    format!(
        "builtins.attrNames ({}.lib.mkValidationTest {})",
        get_flake(flake),
        lib_arguments(system, module, "")
    )
}

/// `(lib.mkValidationTest { ...; scenarios = [ NAME ]; })."vm-NAME".run`: one scenario's
/// nixosTest with the administrator's module on the server.
pub fn validation_run_expression(
    flake: &FlakeRef,
    system: &str,
    module: &Path,
    scenario: &str,
) -> Result<String, FlakeError> {
    let check = check_name(scenario)?;
    Ok(format!(
        "({}.lib.mkValidationTest {}).{}.run",
        get_flake(flake),
        lib_arguments(
            system,
            module,
            &format!(" scenarios = [ {} ];", nix_string(scenario))
        ),
        nix_string(&check)
    ))
}

/// The absolute path of a file the user named, which must exist.
pub fn absolute_file(path: &Path) -> std::io::Result<PathBuf> {
    std::fs::canonicalize(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_for_nix() {
        assert_eq!(nix_string(r#"a"b\c${d}"#), r#""a\"b\\c\${d}""#);
        assert_eq!(nix_string("$x"), "\"$x\"");
    }

    #[test]
    fn remote_references_stay_as_they_are() {
        let flake = FlakeRef::parse("github:OWNER/bitpoll-nix/main").unwrap();
        assert_eq!(flake.absolute, "github:OWNER/bitpoll-nix/main");
        assert_eq!(
            flake.installable("checks.x86_64-linux"),
            "github:OWNER/bitpoll-nix/main#checks.x86_64-linux"
        );
    }

    #[test]
    fn local_references_become_absolute_for_get_flake() {
        let dir = tempfile::tempdir().unwrap();
        let flake = FlakeRef::parse(dir.path().to_str().unwrap()).unwrap();
        assert!(flake.absolute.starts_with('/'));
        assert!(matches!(
            FlakeRef::parse("./does-not-exist-here"),
            Err(FlakeError::LocalPath { .. })
        ));
        assert!(matches!(
            FlakeRef::parse(".#checks"),
            Err(FlakeError::Fragment(_))
        ));
    }

    #[test]
    fn check_names_follow_the_scenario_file_rules() {
        assert_eq!(check_name("backup-restore").unwrap(), "vm-backup-restore");
        assert!(check_name("1st").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("").is_err());
    }

    #[test]
    fn the_validation_expression_names_the_scenario_and_the_file() {
        let flake = FlakeRef {
            given: ".".into(),
            absolute: "/src/flake".into(),
        };
        let expression = validation_run_expression(
            &flake,
            "x86_64-linux",
            Path::new("/etc/nixos/bitpoll.nix"),
            "deployment",
        )
        .unwrap();
        assert_eq!(
            expression,
            r#"((builtins.getFlake "/src/flake").lib.mkValidationTest { system = "x86_64-linux"; module = /. + "/etc/nixos/bitpoll.nix"; scenarios = [ "deployment" ]; })."vm-deployment".run"#
        );
    }
}
