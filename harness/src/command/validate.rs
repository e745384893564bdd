//! `bitpoll-harness validate`: an administrator's NixOS module for services.bitpoll checked
//! before rollout. `--eval-only` evaluates it through the flake's `lib.inspectConfiguration`
//! (nix-tests/inspect.nix), shows NixOS's assertions and warnings, scores the units' hardening,
//! builds the package and runs Django's deploy checks on the rendered settings; otherwise each
//! scenario runs against a VM built from it (`lib.mkValidationTest`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::exit::{EXIT_FAILED, EXIT_USAGE};
use crate::nix::deploy_check::{self, EXIT_CONFIG};
use crate::nix::flake::{self, FlakeRef, DEFAULT_FLAKE};
use crate::nix::hardening::{self, BUDGET};
use crate::nix::inspection::{Buildable, Inspection};
use crate::nix::vm_test::{self, TestBuild};
use crate::nix::{Nix, NixError};
use crate::report::output::Format;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The NixOS module that configures services.bitpoll.
    #[arg(long, value_name = "FILE.nix")]
    pub config: PathBuf,
    /// A scenario to run against the VM; repeatable (default: every scenario).
    #[arg(long = "scenario", value_name = "NAME", conflicts_with = "eval_only")]
    pub scenarios: Vec<String>,
    /// No VM: evaluate the configuration, score the units' hardening, build the package and
    /// run `bitpoll-manage check --deploy` on the rendered settings.
    #[arg(long)]
    pub eval_only: bool,
    /// The flake providing lib.inspectConfiguration and lib.mkValidationTest.
    #[arg(long, value_name = "REF", default_value = DEFAULT_FLAKE)]
    pub flake: String,
    /// The Nix system to evaluate and build for (default: this machine's).
    #[arg(long, value_name = "SYSTEM")]
    pub system: Option<String>,
}

/// `bitpoll-harness validate`.
pub fn command(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let nix = Nix::default();
    // A syntax error is reported by the file as the user named it, before anything is
    // evaluated, so that it is not buried in an evaluation trace.
    if !args.config.is_file() {
        anyhow::bail!(
            "--config {}: no such file; give the NixOS module that configures services.bitpoll",
            args.config.display()
        );
    }
    nix.parse_file(&args.config)?;
    let config = flake::absolute_file(&args.config)
        .with_context(|| format!("--config {}", args.config.display()))?;
    let flake = FlakeRef::parse(&args.flake)?;
    let system = match &args.system {
        Some(system) => system.clone(),
        None => flake::current_system()?,
    };
    if args.eval_only {
        eval_only(&nix, &flake, &system, &config)
    } else {
        in_vms(&nix, &flake, &system, &config, &args.scenarios)
    }
}

fn in_vms(
    nix: &Nix,
    flake: &FlakeRef,
    system: &str,
    config: &Path,
    scenarios: &[String],
) -> anyhow::Result<ExitCode> {
    let scenarios = if scenarios.is_empty() {
        let names = nix
            .eval_json(&[
                "--impure".into(),
                "--expr".into(),
                flake::validation_names_expression(flake, system, config),
            ])
            .map_err(|error| explain(error, config))?;
        let names: Vec<String> = serde_json::from_value(names)
            .context("lib.mkValidationTest did not return an attribute set of tests")?;
        vm_test::scenarios_of(&names)
    } else {
        scenarios.to_vec()
    };
    let builds = scenarios
        .iter()
        .map(|scenario| {
            let expression = flake::validation_run_expression(flake, system, config, scenario)?;
            let args = [
                "build",
                "-L",
                "--no-link",
                "--print-out-paths",
                "--impure",
                "--expr",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([expression])
            .collect();
            Ok(TestBuild {
                scenario: scenario.clone(),
                args,
            })
        })
        .collect::<Result<Vec<_>, flake::FlakeError>>()?;
    // An administrator wants the whole picture, so every scenario runs even after one failed.
    let result = vm_test::run_suite(nix, &builds, true, Format::Human);
    for error in &result.errors {
        if let Some(hint) = hint(error, config) {
            eprintln!("{hint}");
        }
    }
    vm_test::emit(result, Format::Human, None, None)
}

fn eval_only(nix: &Nix, flake: &FlakeRef, system: &str, config: &Path) -> anyhow::Result<ExitCode> {
    let value = nix
        .eval_json(&[
            "--impure".into(),
            "--expr".into(),
            flake::inspect_expression(flake, system, config),
        ])
        .map_err(|error| explain(error, config))?;
    let inspection: Inspection = serde_json::from_value(value)
        .context("lib.inspectConfiguration returned data this harness does not understand; use the harness of the same flake")?;

    for warning in &inspection.warnings {
        println!("warning: {warning}");
    }
    if !inspection.assertions.is_empty() {
        // As NixOS prints them when the system is built.
        let mut text = String::from("Failed assertions:");
        for message in &inspection.assertions {
            text.push_str(&format!("\n- {message}"));
        }
        println!("{text}");
        eprintln!(
            "error: {}: {} failed assertion(s); each names the option to change",
            config.display(),
            inspection.assertions.len()
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    println!("evaluation: ok ({} warning(s))", inspection.warnings.len());

    let mut failed = false;
    let work = tempfile::tempdir().context("cannot create a temporary directory for the units")?;
    let services: Vec<(&String, &String)> = inspection
        .units
        .iter()
        .filter(|(name, _)| name.ends_with(".service"))
        .collect();
    if services.is_empty() {
        anyhow::bail!("the configuration has no bitpoll service units; is services.bitpoll.enable false in {}?", config.display());
    }
    for (name, text) in services {
        let file = work.path().join(name);
        std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
        let score = hardening::score(&file)?;
        if score.exposure > BUDGET {
            failed = true;
            println!(
                "FAIL hardening: {name}: exposure {} is above the budget {BUDGET:.1}; costs most: {}",
                score.exposure,
                score.costliest(3)
            );
        } else {
            println!(
                "ok   hardening: {name}: exposure {} (budget {BUDGET:.1})",
                score.exposure
            );
        }
    }

    let package = build_output(nix, inspection.package.as_ref(), "services.bitpoll.package")?;
    let settings = build_output(nix, inspection.settings_file.as_ref(), "the settings file")?;
    let check = deploy_check::run(&package, &settings)?;
    if !check.output.is_empty() {
        println!("bitpoll-manage check --deploy:");
        for line in check.output.lines() {
            println!("  {line}");
        }
    }
    match check.status {
        Some(0) => println!("ok   django: check --deploy found no errors"),
        Some(EXIT_CONFIG) => {
            failed = true;
            println!(
                "FAIL django: the settings are refused; {}",
                settings_hint(&check.output)
            );
        }
        status => {
            failed = true;
            println!(
                "FAIL django: check --deploy exited with {}; fix the errors above in services.bitpoll.settings",
                status.map_or("a signal".to_string(), |s| s.to_string())
            );
        }
    }
    Ok(if failed {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

fn build_output(nix: &Nix, buildable: Option<&Buildable>, what: &str) -> anyhow::Result<PathBuf> {
    let buildable = buildable
        .with_context(|| format!("lib.inspectConfiguration returned no derivation for {what}"))?;
    let paths = nix.build(&buildable.build_args())?;
    Ok(paths[0].clone())
}

/// The settings shim names a setting as `setting KEY in FILE`; the administrator sets it as
/// `services.bitpoll.settings.KEY`.
fn settings_hint(output: &str) -> String {
    let key = output.split("setting ").nth(1).and_then(|rest| {
        let key: String = rest
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        (!key.is_empty()).then_some(key)
    });
    match key {
        Some(key) => format!("set services.bitpoll.settings.{key} as the message says"),
        None => "the message above says what to set".to_string(),
    }
}

/// Nix's message, followed by what to do when it is a known kind of configuration error.
fn explain(error: NixError, config: &Path) -> anyhow::Error {
    let text = error.to_string();
    match hint(&text, config) {
        Some(hint) => anyhow::anyhow!("{text}\n{hint}"),
        None => anyhow::Error::new(error),
    }
}

/// The option an error of the module system is about, and what to do about it.
fn hint(message: &str, config: &Path) -> Option<String> {
    let option = |after: &str| -> Option<String> {
        let rest = message.split(after).nth(1)?;
        let end = rest.find(['\'', '`'])?;
        Some(rest[..end].to_string())
    };
    let file = config.display();
    if let Some(option) = option("The option `") {
        if message.contains("does not exist") {
            return Some(format!("hint: {file} sets {option}, which no module declares: check its spelling against docs/options.md (services.bitpoll.*) or the NixOS options"));
        }
        if message.contains("is used but not defined") {
            return Some(format!("hint: {option} has no default: set it in {file}"));
        }
    }
    if let Some(option) = option("A definition for option `") {
        return Some(format!("hint: {file} gives {option} a value of the wrong type: the message says which type it takes (docs/options.md)"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_system_errors_get_the_option_and_what_to_do() {
        let file = Path::new("/etc/nixos/bitpoll.nix");
        let missing = "error: The option `services.bitpoll.listenAdress' does not exist. Definition values:\n- In `/etc/nixos/bitpoll.nix': \"0.0.0.0\"";
        assert_eq!(
            hint(missing, file).unwrap(),
            "hint: /etc/nixos/bitpoll.nix sets services.bitpoll.listenAdress, which no module declares: check its spelling against docs/options.md (services.bitpoll.*) or the NixOS options"
        );
        let wrong = "error: A definition for option `services.bitpoll.port' is not of type `16 bit unsigned integer; between 0 and 65535 (both inclusive)'.";
        assert!(hint(wrong, file)
            .unwrap()
            .contains("gives services.bitpoll.port a value of the wrong type"));
        assert_eq!(hint("error: something else", file), None);
    }

    #[test]
    fn settings_errors_name_the_option() {
        let output = "bitpoll: configuration error: setting BASE_URL in /nix/store/x-bitpoll-settings.json must be an absolute http:// or https:// URL";
        assert_eq!(
            settings_hint(output),
            "set services.bitpoll.settings.BASE_URL as the message says"
        );
    }
}
