//! `bitpoll-harness vm`: scenarios' NixOS VM tests built and run by Nix (through
//! `nix::vm_test`), with their reports printed as `run` prints its own; or one test's
//! interactive driver.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::nix::flake::{self, FlakeRef, DEFAULT_FLAKE};
use crate::nix::vm_test::{
    build_args, emit, ensure_checks, flake_checks, run_suite, TestBuild, VmError,
};
use crate::nix::Nix;
use crate::report::output::Format;

#[derive(Debug, clap::Args)]
pub struct VmArgs {
    /// Scenario names (each has the check vm-NAME).
    #[arg(required = true)]
    pub scenarios: Vec<String>,
    /// The flake with the checks: a path or a flake reference.
    #[arg(long, value_name = "REF", default_value = DEFAULT_FLAKE)]
    pub flake: String,
    /// The Nix system whose checks to build (default: this machine's, such as x86_64-linux).
    #[arg(long, value_name = "SYSTEM")]
    pub system: Option<String>,
    /// Go on after a scenario failed (and let Nix go on after a failed build).
    #[arg(long)]
    pub keep_going: bool,
    /// Start the test's interactive driver with this terminal instead (one scenario).
    #[arg(long, conflicts_with_all = ["keep_going", "report", "junit"])]
    pub interactive: bool,
    /// Output on stdout: per-step lines for people, or the JSON report of every scenario.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Also write the JSON report of every scenario here.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Also write JUnit XML here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
}

/// `bitpoll-harness vm SCENARIO...`.
pub fn command(args: &VmArgs) -> anyhow::Result<ExitCode> {
    let flake = FlakeRef::parse(&args.flake)?;
    let system = match &args.system {
        Some(system) => system.clone(),
        None => flake::current_system()?,
    };
    if args.interactive && args.scenarios.len() != 1 {
        anyhow::bail!(
            "--interactive starts one scenario's test driver; name exactly one scenario (got {})",
            args.scenarios.len()
        );
    }
    let nix = Nix::default();
    let checks = flake_checks(&nix, &flake, &system, &[])?;
    ensure_checks(&checks, &args.scenarios, &flake, &system)?;
    if args.interactive {
        return interactive(&nix, &flake, &system, &args.scenarios[0]);
    }
    let extra: Vec<String> = if args.keep_going {
        vec!["--keep-going".into()]
    } else {
        Vec::new()
    };
    let builds = args
        .scenarios
        .iter()
        .map(|scenario| {
            Ok(TestBuild {
                scenario: scenario.clone(),
                args: build_args(
                    &extra,
                    &flake.installable(&format!(
                        "checks.{system}.{}.run",
                        flake::check_name(scenario)?
                    )),
                ),
            })
        })
        .collect::<Result<Vec<_>, VmError>>()?;
    let result = run_suite(&nix, &builds, args.keep_going, args.format);
    emit(
        result,
        args.format,
        args.report.as_deref(),
        args.junit.as_deref(),
    )
}

/// Builds the test's interactive driver and hands the terminal to it; returns only on error.
fn interactive(
    nix: &Nix,
    flake: &FlakeRef,
    system: &str,
    scenario: &str,
) -> anyhow::Result<ExitCode> {
    let installable = flake.installable(&format!(
        "checks.{system}.{}.driverInteractive",
        flake::check_name(scenario)?
    ));
    let args: Vec<String> = ["build", "--no-link", "--print-out-paths", &installable]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let paths = nix.build(&args)?;
    let driver: PathBuf = paths[0].join("bin/nixos-test-driver");
    eprintln!(
        "starting {} (test_script() runs the whole test; server.shell_interact() opens a shell)",
        driver.display()
    );
    let error = std::process::Command::new(&driver).exec();
    Err(anyhow::anyhow!(
        "cannot start {}: {error}",
        driver.display()
    ))
}
