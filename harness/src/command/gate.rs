//! `bitpoll-harness gate`: the nixpkgs-bump gate. Runs every scenario's VM test with nixpkgs
//! overridden, measures the package's closure, and compares the result with a saved baseline
//! (`baseline`); or, with `--from-reports`, takes the results from the harness's JSON reports
//! of an earlier run, which needs no Nix.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::exit::{EXIT_FAILED, EXIT_USAGE};
mod fleet;

use fleet::Selected;

use crate::nix::baseline::Baseline;
use crate::nix::comparison::compare;
use crate::nix::flake::{self, FlakeRef, DEFAULT_FLAKE};
use crate::nix::thresholds::Thresholds;
use crate::nix::vm_test::{self, TestBuild};
use crate::nix::{Nix, NixError};
use crate::report::files;
use crate::report::output::{write_atomic, Format};

#[derive(Debug, clap::Args)]
pub struct GateArgs {
    /// The nixpkgs to try (a flake reference such as github:NixOS/nixpkgs/nixos-unstable).
    #[arg(long, value_name = "REF", required_unless_present = "from_reports")]
    pub nixpkgs: Option<String>,
    /// Instead of running the suite, read the harness's JSON reports (*.json) in DIR; needs
    /// no Nix.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["nixpkgs", "scenarios"])]
    pub from_reports: Option<PathBuf>,
    /// The flake whose checks to run.
    #[arg(long, value_name = "REF", default_value = DEFAULT_FLAKE)]
    pub flake: String,
    /// The Nix system whose checks to build (default: this machine's).
    #[arg(long, value_name = "SYSTEM")]
    pub system: Option<String>,
    /// The baseline to compare with (docs/nix-commands.md); without one, a failed step is the
    /// only regression.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Write this run's data as a baseline.
    #[arg(long, value_name = "FILE")]
    pub save_baseline: Option<PathBuf>,
    /// Where the data came from, stored as the saved baseline's `source` (default: the
    /// nixpkgs reference and system, or the reports' directory and scenarios).
    #[arg(long, value_name = "TEXT", requires = "save_baseline")]
    pub note: Option<String>,
    /// With fleet reports: compare only this host's results (needed with --save-baseline
    /// when the reports hold several hosts). Without it every host is compared on its own.
    #[arg(long, value_name = "NAME", requires = "from_reports")]
    pub host: Option<String>,
    /// A scenario to run; repeatable (default: every VM check of the flake).
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
}

/// The closure size in `nix path-info --closure-size --json` output: a list of objects with
/// `path` up to Nix 2.18, an object keyed by store path since 2.19.
pub fn closure_size(value: &serde_json::Value) -> Option<u64> {
    let entry = match value {
        serde_json::Value::Array(entries) => entries.first()?,
        serde_json::Value::Object(map) if map.contains_key("closureSize") => value,
        serde_json::Value::Object(map) => map.values().next()?,
        _ => return None,
    };
    entry.get("closureSize")?.as_u64()
}

/// `bitpoll-harness gate`.
pub fn command(args: &GateArgs) -> anyhow::Result<ExitCode> {
    let thresholds = Thresholds::default();
    let baseline = match &args.baseline {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--baseline {}: cannot read it", path.display()))?;
            Some(
                Baseline::from_json(&text)
                    .map_err(|error| anyhow::anyhow!("--baseline {}: {error}", path.display()))?,
            )
        }
        None => None,
    };
    let current = match &args.from_reports {
        Some(dir) => {
            let reports = match fleet::select(files::in_dir(dir)?, args.host.as_deref(), dir)? {
                Selected::Runs(reports) => reports,
                Selected::Hosts(hosts) => {
                    if args.save_baseline.is_some() {
                        if let [only] = &hosts[..] {
                            anyhow::bail!("--save-baseline: host {} did not run everything ({}); a baseline needs a complete run", only.name, only.missing.join("; "));
                        }
                        anyhow::bail!("--save-baseline: the fleet reports in {} hold {} hosts ({}); choose the one whose results become the baseline with --host NAME", dir.display(), hosts.len(), fleet::names(&hosts));
                    }
                    return fleet::compare_hosts(
                        &hosts,
                        baseline.as_ref(),
                        args.baseline.as_deref(),
                        &thresholds,
                    );
                }
            };
            let scenarios: Vec<&str> = reports
                .iter()
                .flat_map(|(_, report)| &report.scenarios)
                .map(|scenario| scenario.scenario.as_str())
                .collect();
            let source = format!("reports in {} ({})", dir.display(), scenarios.join(", "));
            Baseline::from_reports(&source, &reports, None)?
        }
        None => match run_suite(args)? {
            Ok(current) => current,
            Err(code) => return Ok(code),
        },
    };
    let current = match &args.note {
        Some(note) => Baseline {
            source: note.clone(),
            ..current
        },
        None => current,
    };
    if let Some(path) = &args.save_baseline {
        let json =
            serde_json::to_string_pretty(&current).context("cannot serialize the baseline")?;
        write_atomic(path, format!("{json}\n").as_bytes())
            .with_context(|| format!("cannot write the baseline {}", path.display()))?;
        println!("baseline written to {}", path.display());
    }
    match (&args.baseline, &baseline) {
        (Some(path), Some(baseline)) => println!(
            "gate: {} compared with {} ({})",
            current.source,
            path.display(),
            baseline.source
        ),
        _ => println!(
            "gate: {} (no --baseline: only failed steps count)",
            current.source
        ),
    }
    let comparison = compare(baseline.as_ref(), &current, &thresholds);
    println!("{}", comparison.render(&thresholds));
    Ok(if comparison.regressions() > 0 {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs the suite with the nixpkgs override; the inner error is the exit code of a run that
/// produced no verdict (its errors are printed already).
fn run_suite(args: &GateArgs) -> anyhow::Result<Result<Baseline, ExitCode>> {
    let nixpkgs = args
        .nixpkgs
        .as_deref()
        .context("pass --nixpkgs REF, or --from-reports DIR")?;
    let flake = FlakeRef::parse(&args.flake)?;
    let system = match &args.system {
        Some(system) => system.clone(),
        None => flake::current_system()?,
    };
    // The gate tries another nixpkgs without ever rewriting the flake's lock file.
    let overrides: Vec<String> = [
        "--override-input",
        "nixpkgs",
        nixpkgs,
        "--no-write-lock-file",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let nix = Nix::default();
    let checks = vm_test::flake_checks(&nix, &flake, &system, &overrides)?;
    let mut scenarios = if args.scenarios.is_empty() {
        vm_test::scenarios_of(&checks)
    } else {
        args.scenarios.clone()
    };
    // A scenario named twice runs once: the baseline holds each scenario once.
    let mut seen = std::collections::BTreeSet::new();
    scenarios.retain(|scenario| seen.insert(scenario.clone()));
    vm_test::ensure_checks(&checks, &scenarios, &flake, &system)?;
    let builds = scenarios
        .iter()
        .map(|scenario| {
            Ok(TestBuild {
                scenario: scenario.clone(),
                args: vm_test::build_args(
                    &overrides,
                    &flake.installable(&format!(
                        "checks.{system}.{}.run",
                        flake::check_name(scenario)?
                    )),
                ),
            })
        })
        .collect::<Result<Vec<_>, flake::FlakeError>>()?;
    // Every scenario runs: the comparison needs all of them, failed or not.
    let result = vm_test::run_suite(&nix, &builds, true, Format::Human);
    if !result.errors.is_empty() {
        eprintln!(
            "error: {} scenario(s) produced no report; no comparison",
            result.errors.len()
        );
        return Ok(Err(ExitCode::from(EXIT_USAGE)));
    }
    let size = package_closure_size(&nix, &flake, &system, &overrides)?;
    let report = vm_test::merged_report(result.scenarios);
    let current = Baseline::from_reports(
        &format!("nixpkgs {nixpkgs} on {system}"),
        &[("the VM suite".to_string(), report)],
        Some(size),
    )?;
    Ok(Ok(current))
}

fn package_closure_size(
    nix: &Nix,
    flake: &FlakeRef,
    system: &str,
    overrides: &[String],
) -> Result<u64, NixError> {
    let installable = flake.installable(&format!("packages.{system}.bitpoll"));
    let paths = nix.build(&vm_test::build_args(overrides, &installable))?;
    let path = paths[0].display().to_string();
    let args: Vec<String> = ["path-info", "--closure-size", "--json", &path]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let captured = nix.nix(&args, false)?;
    let value: serde_json::Value =
        serde_json::from_str(&captured.stdout).unwrap_or(serde_json::Value::Null);
    closure_size(&value).ok_or_else(|| NixError::Output {
        command: format!("nix path-info --closure-size --json {path}"),
        problem: "no closureSize".into(),
        output: captured.stdout.chars().take(2000).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closure_size_in_both_json_forms() {
        let old = serde_json::json!([{ "path": "/nix/store/a", "closureSize": 123 }]);
        let new = serde_json::json!({ "/nix/store/a": { "closureSize": 456 } });
        assert_eq!(closure_size(&old), Some(123));
        assert_eq!(closure_size(&new), Some(456));
        assert_eq!(closure_size(&serde_json::json!("x")), None);
    }
}
