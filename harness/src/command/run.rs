//! `bitpoll-harness run`: scenarios loaded by path or name and run against a target (`local`
//! or `ssh://`), with per-step progress, the JSON report and JUnit XML.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};

use crate::execution::actions::Context;
use crate::execution::capabilities::Capabilities;
use crate::execution::runner::{new_run_id, run_scenario, RunOptions};
use crate::exit::EXIT_FAILED;
use crate::fleet::inventory::{Host, HostTarget, Inventory, DEFAULT_CONNECT_TIMEOUT};
use crate::fleet::run::FleetRun;
use crate::fleet::{self, flake_hosts, inventory_file};
use crate::nix::Nix;
use crate::report::output::{self, Format};
use crate::report::{human, Report, StepReport};
use crate::scenario::{files, parse, Scenario};
use crate::target::http::HttpClient;
use crate::target::ssh::HostKeyPolicy;
use crate::target::Target;

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
    #[arg(
        long,
        env = "BITPOLL_HARNESS_TARGET",
        required_unless_present_any = ["inventory", "inventory_from_flake"]
    )]
    pub target: Option<String>,
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
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// Running on many hosts at once (docs/fleet.md).
#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// Run on every host of this inventory (TOML; see docs/fleet.md) instead of one --target.
    #[arg(long, value_name = "FILE", conflicts_with = "inventory_from_flake")]
    pub inventory: Option<PathBuf>,
    /// Run on the hosts of a flake's nixosConfigurations (or colmena hive) that enable
    /// services.bitpoll, as an inventory.
    #[arg(long, value_name = "REF")]
    pub inventory_from_flake: Option<String>,
    /// Only these hosts: names or tags, comma-separated or repeated.
    #[arg(long, value_name = "NAME|TAG,...")]
    pub hosts: Vec<String>,
    /// Run up to N hosts at once (default: every host, up to 32).
    #[arg(long, value_name = "N")]
    pub parallel: Option<usize>,
    /// Start no further host or scenario once one host has failed or could not be reached.
    #[arg(long)]
    pub fail_fast: bool,
}

fn load_scenarios(arguments: &[String], dir: Option<&Path>) -> anyhow::Result<Vec<Scenario>> {
    let mut scenarios = Vec::new();
    let mut errors = Vec::new();
    // Only names need the directory; paths work without one.
    let dir = files::directory(dir);
    for argument in arguments {
        let found = match &dir {
            Ok(dir) => files::resolve(argument, dir),
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

/// The one target of a single run, connected as a fleet's host would be.
fn connect(args: &RunArgs, target: &str) -> anyhow::Result<Arc<dyn Target>> {
    let host = Host {
        name: target.to_string(),
        target: HostTarget::parse(target).map_err(anyhow::Error::msg)?,
        base_url: args.base_url.clone(),
        tags: Vec::new(),
        identity: args.identity.clone(),
        known_hosts: Some(args.known_hosts),
        known_hosts_file: args.known_hosts_file.clone(),
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        vars: Vec::new(),
    };
    host.connect().map_err(anyhow::Error::msg)
}

/// The variables declared by the run's scenarios and by every scenario of the directory (one
/// that does not parse declares nothing here; `check` reports it).
fn known_vars(scenarios: &[Scenario], dir: Option<&Path>) -> BTreeSet<String> {
    let in_directory = files::directory(dir)
        .and_then(|dir| files::in_dir(&dir))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|path| parse::load(&path).ok());
    scenarios
        .iter()
        .cloned()
        .chain(in_directory)
        .flat_map(|scenario| scenario.vars.into_iter().map(|(name, _)| name))
        .collect()
}

/// --identity, --known-hosts, --known-hosts-file and --base-url (or their environment variables)
/// fill in what a host leaves unset; the inventory's own values win.
fn apply_command_line_defaults(args: &RunArgs, hosts: &mut [Host]) {
    for host in hosts {
        if host.identity.is_none() {
            host.identity.clone_from(&args.identity);
        }
        if host.known_hosts_file.is_none() {
            host.known_hosts_file.clone_from(&args.known_hosts_file);
        }
        if host.base_url.is_none() {
            host.base_url = args
                .base_url
                .as_ref()
                .map(|url| url.trim_end_matches('/').to_string());
        }
        host.known_hosts.get_or_insert(args.known_hosts);
    }
}

/// The inventory of a fleet run, when one is asked for.
fn fleet_inventory(args: &RunArgs) -> anyhow::Result<Option<Inventory>> {
    if let Some(path) = &args.fleet.inventory {
        return inventory_file::load(path)
            .map(Some)
            .map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"));
    }
    if let Some(flake) = &args.fleet.inventory_from_flake {
        return flake_hosts::inventory(&Nix::default(), flake).map(Some);
    }
    Ok(None)
}

/// `bitpoll-harness run SCENARIO...`.
pub fn command(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let scenarios = load_scenarios(&args.scenarios, args.scenario_dir.as_deref())?;
    let overrides = parse_overrides(&args.vars, &scenarios)?;
    if let Some(inventory) = fleet_inventory(args)? {
        // BITPOLL_HARNESS_TARGET may be left over from a testbed's printed environment: it
        // names one host and means nothing to a fleet, so it is set aside, and said so. A
        // --target on the command line beside an inventory is a contradiction.
        if let Some(target) = &args.target {
            if std::env::var("BITPOLL_HARNESS_TARGET").ok().as_ref() == Some(target) {
                eprintln!("note: BITPOLL_HARNESS_TARGET={target} is ignored: the inventory names the hosts");
            } else {
                bail!("--target {target}: a fleet run takes its hosts from the inventory; drop --target or --inventory");
            }
        }
        let mut hosts = inventory
            .select(&args.fleet.hosts)
            .map_err(anyhow::Error::msg)?;
        apply_command_line_defaults(args, &mut hosts);
        let code = fleet::run::run(&FleetRun {
            inventory: inventory.source,
            hosts,
            scenarios: &scenarios,
            overrides: &overrides,
            known_vars: known_vars(&scenarios, args.scenario_dir.as_deref()),
            parallel: args.fleet.parallel,
            fail_fast: args.fleet.fail_fast,
            format: args.format,
            report: args.report.clone(),
            junit: args.junit.clone(),
        })?;
        return Ok(ExitCode::from(code));
    }
    if !args.fleet.hosts.is_empty() || args.fleet.parallel.is_some() || args.fleet.fail_fast {
        bail!("--hosts, --parallel and --fail-fast choose among an inventory's hosts; pass --inventory FILE or --inventory-from-flake REF");
    }
    let target_text = args
        .target
        .as_deref()
        .context("pass --target, --inventory FILE or --inventory-from-flake REF")?;
    if args.base_url.is_none() {
        if let Some(scenario) = scenarios.iter().find(|s| s.has_http_steps()) {
            bail!(
                "scenario `{}` has http steps; pass --base-url URL",
                scenario.name
            );
        }
    }
    let target = connect(args, target_text)?;
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
        let mut progress =
            |step: &StepReport| output::progress(args.format, &human::step_lines(step));
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
