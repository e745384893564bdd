//! The command line: `list`, `check` and `run`, and the commands that drive Nix: `vm`,
//! `validate` and `gate` (their work is in the modules of the same names).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};

use crate::execution::actions::Context;
use crate::execution::capabilities::Capabilities;
use crate::execution::runner::{new_run_id, run_scenario, RunOptions};
use crate::report::human;
use crate::report::output::{self, Format};
use crate::report::Report;
use crate::scenario::Scenario;
use crate::scenario::{files as scenario_files, parse};
use crate::target::http::HttpClient;
use crate::target::local::LocalTarget;
use crate::target::ssh::{default_known_hosts, HostKeyPolicy, SshAddress, SshOptions, SshTarget};
use crate::target::Target;

/// Exit codes: 0 every step passed or was skipped with a reason, 1 a step failed,
/// 2 a usage, scenario or connection error kept the run from starting.
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "bitpoll-harness",
    version,
    about = "Runs declarative scenarios that prove a Bitpoll deployment works",
    after_help = "Exit codes: 0 all steps passed or were skipped with a reason, 1 a step failed, 2 usage, scenario or connection error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the scenarios of a directory with their one-line summary.
    List {
        /// The scenario directory (default: as `run --scenarios` finds it).
        dir: Option<PathBuf>,
    },
    /// Validate scenario files without running them; problems are printed as FILE:LINE:COL: message.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run scenarios against a target.
    Run(RunArgs),
    /// Build and run scenarios' NixOS VM tests with Nix, and print their reports as `run` does.
    Vm(VmArgs),
    /// Check an administrator's NixOS module for services.bitpoll: evaluate it, score its
    /// hardening and run Django's deploy checks (--eval-only), or run scenarios against a VM
    /// built from it.
    Validate(ValidateArgs),
    /// Run the VM suite with another nixpkgs (or read existing reports) and compare the results
    /// with a baseline; exit 1 on any regression.
    Gate(GateArgs),
}

/// The flake whose checks and lib the Nix commands use.
const DEFAULT_FLAKE: &str = ".";

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
    /// A scenario to run; repeatable (default: every VM check of the flake).
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario files, or names of scenarios in the scenario directory.
    #[arg(required = true)]
    pub scenarios: Vec<String>,
    /// The scenario directory names are looked up in (default: $BITPOLL_HARNESS_SCENARIOS, else
    /// ./scenarios, else the scenarios installed with the harness).
    #[arg(long = "scenarios", value_name = "DIR")]
    pub scenario_dir: Option<PathBuf>,
    /// Where commands run: `local`, or `ssh://USER@HOST[:PORT]`.
    #[arg(long, env = "BITPOLL_HARNESS_TARGET")]
    pub target: String,
    /// Private key for the ssh target (default: ssh-agent).
    #[arg(long, value_name = "KEYFILE", env = "BITPOLL_HARNESS_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Host key policy for the ssh target.
    #[arg(
        long,
        value_enum,
        default_value = "strict",
        env = "BITPOLL_HARNESS_KNOWN_HOSTS"
    )]
    pub known_hosts: HostKeyPolicy,
    /// Known-hosts file for the ssh target (default: ~/.ssh/known_hosts).
    #[arg(long, value_name = "PATH", env = "BITPOLL_HARNESS_KNOWN_HOSTS_FILE")]
    pub known_hosts_file: Option<PathBuf>,
    /// The deployment's base URL, for http steps (such as http://127.0.0.1:8080).
    #[arg(long, value_name = "URL", env = "BITPOLL_HARNESS_BASE_URL")]
    pub base_url: Option<String>,
    /// Override a variable declared in a scenario's [vars]; repeatable.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Output on stdout: per-step lines for people, or the JSON report.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Also write JUnit XML here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Also write the JSON report here.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
}

/// Runs a parsed command line. Errors that reach here are usage errors (exit 2).
pub fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::List { dir } => list(dir.as_deref()),
        Command::Check { files } => Ok(check(&files)),
        Command::Run(args) => run(args),
        Command::Vm(args) => crate::vm::command(&args),
        Command::Validate(args) => crate::validate::command(&args),
        Command::Gate(args) => crate::gate::command(&args),
    }
}

fn list(dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dir = scenario_files::directory(dir).map_err(anyhow::Error::msg)?;
    let files = scenario_files::in_dir(&dir).map_err(anyhow::Error::msg)?;
    let mut invalid = false;
    let mut rows = Vec::new();
    for file in files {
        match parse::load(&file) {
            Ok(scenario) => rows.push((scenario.name, scenario.summary)),
            Err(diagnostics) => {
                eprintln!("{diagnostics}");
                invalid = true;
            }
        }
    }
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, summary) in rows {
        println!("{name:<width$}  {summary}");
    }
    Ok(if invalid {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::SUCCESS
    })
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut problems = 0;
    for file in files {
        match parse::load(file) {
            Ok(scenario) => println!("{}: ok ({} steps)", file.display(), scenario.steps.len()),
            Err(diagnostics) => {
                problems += diagnostics.0.len();
                eprintln!("{diagnostics}");
            }
        }
    }
    if problems > 0 {
        eprintln!("{problems} problem(s) found");
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::SUCCESS
    }
}

fn load_scenarios(arguments: &[String], dir: Option<&Path>) -> anyhow::Result<Vec<Scenario>> {
    let mut scenarios = Vec::new();
    let mut errors = Vec::new();
    // Only names need the directory; paths work without one.
    let dir = scenario_files::directory(dir);
    for argument in arguments {
        let found = match &dir {
            Ok(dir) => scenario_files::resolve(argument, dir),
            Err(_) if Path::new(argument).is_file() => Ok(PathBuf::from(argument)),
            Err(message) => Err(format!("no scenario `{argument}`: {message}")),
        };
        match found {
            Err(message) => errors.push(message),
            Ok(path) => match parse::load(&path) {
                Ok(scenario) => scenarios.push(scenario),
                Err(diagnostics) => errors.push(diagnostics.to_string()),
            },
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(scenarios)
}

/// `--var NAME=VALUE`; a name no scenario declares is a mistake, not a silent no-op.
fn parse_overrides(
    arguments: &[String],
    scenarios: &[Scenario],
) -> anyhow::Result<Vec<(String, String)>> {
    arguments
        .iter()
        .map(|argument| {
            let (name, value) = argument
                .split_once('=')
                .with_context(|| format!("--var `{argument}` is not NAME=VALUE"))?;
            let declared = scenarios
                .iter()
                .any(|scenario| scenario.vars.iter().any(|(var, _)| var == name));
            if !declared {
                let mut known: Vec<&str> = scenarios
                    .iter()
                    .flat_map(|scenario| scenario.vars.iter().map(|(var, _)| var.as_str()))
                    .collect();
                known.sort_unstable();
                known.dedup();
                let known = if known.is_empty() {
                    "they declare none".to_string()
                } else {
                    format!("they declare: {}", known.join(", "))
                };
                bail!("--var {name}: no scenario of this run declares `{name}` in [vars]; {known}");
            }
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

fn connect(args: &RunArgs) -> anyhow::Result<Arc<dyn Target>> {
    if args.target == "local" {
        return Ok(Arc::new(LocalTarget));
    }
    let address = SshAddress::parse(&args.target).map_err(anyhow::Error::msg)?;
    let options = SshOptions {
        identity: args.identity.clone(),
        policy: args.known_hosts,
        known_hosts: args
            .known_hosts_file
            .clone()
            .unwrap_or_else(default_known_hosts),
        connect_timeout: Duration::from_secs(20),
    };
    Ok(Arc::new(SshTarget::connect(address, &options)?))
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let scenarios = load_scenarios(&args.scenarios, args.scenario_dir.as_deref())?;
    let overrides = parse_overrides(&args.vars, &scenarios)?;
    if args.base_url.is_none() {
        if let Some(scenario) = scenarios.iter().find(|s| s.has_http_steps()) {
            bail!(
                "scenario `{}` has http steps; pass --base-url URL",
                scenario.name
            );
        }
    }
    let target = connect(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let context = Context {
        target: Arc::clone(&target),
        http: HttpClient::new(args.base_url.clone()).context("cannot build the http client")?,
    };
    let capabilities = Capabilities::probe(target.as_ref());
    let options = RunOptions {
        run_id: new_run_id(),
        base_url: args.base_url.clone(),
        overrides,
    };
    let mut reports = Vec::new();
    for scenario in &scenarios {
        output::progress(
            args.format,
            &human::scenario_header(
                &scenario.name,
                &scenario.file.display().to_string(),
                &target.describe(),
            ),
        );
        let mut progress = |step: &crate::report::StepReport| {
            output::progress(args.format, &human::step_lines(step))
        };
        let report = runtime.block_on(run_scenario(
            scenario,
            &context,
            &capabilities,
            &options,
            &mut progress,
        ));
        output::progress(args.format, &human::scenario_footer(&report));
        reports.push(report);
    }
    let report = Report::new(options.run_id, target.describe(), reports);
    output::emit(
        &report,
        args.format,
        args.report.as_deref(),
        args.junit.as_deref(),
    )?;
    Ok(if report.failed() {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
