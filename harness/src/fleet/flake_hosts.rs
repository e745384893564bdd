//! Hosts from Nix instead of a hand-written inventory: the configurations of a flake that enable
//! services.bitpoll (its `nixosConfigurations` and a colmena hive's nodes), each reached over SSH
//! at colmena's `deployment.targetHost`, deploy-rs' `hostname` or its `networking.fqdn`, with its
//! `services.bitpoll.baseUrl` for http steps (docs/fleet.md, "Hosts from a flake").
//!
//! One `nix eval` applies flake_hosts.nix to the flake; that file only gathers facts, and this
//! one checks them and words every problem, so that all of a flake's problems come at once.

use serde::Deserialize;

use super::inventory::{
    check_base_url, check_name, Host, HostTarget, Inventory, DEFAULT_CONNECT_TIMEOUT,
};
use crate::nix::flake::{nix_string, FlakeError, FlakeRef};
use crate::nix::{Nix, NixError};
use crate::target::ssh::SshAddress;

/// The function from a flake's outputs to its hosts' facts.
pub const HOSTS_EXPRESSION: &str = include_str!("flake_hosts.nix");

/// The SSH login when the flake names none: NixOS configurations are usually deployed as root,
/// and colmena's own default is root too.
pub const DEFAULT_USER: &str = "root";

/// What flake_hosts.nix returns.
#[derive(Debug, Deserialize)]
struct Found {
    hosts: Vec<FoundHost>,
    disabled: Vec<String>,
    broken: Vec<String>,
    present: Present,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Present {
    nixos_configurations: bool,
    colmena_hive: bool,
    colmena: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FoundHost {
    name: String,
    source: String,
    target: FoundTarget,
    base_url: Option<String>,
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct FoundTarget {
    host: Option<String>,
    from: Option<String>,
    user: Option<String>,
    /// A number from colmena's targetPort, or the text after `-p` in deploy-rs' sshOpts.
    port: Option<serde_json::Value>,
}

/// The expression `nix eval` evaluates: flake_hosts.nix applied to the flake, whose reference
/// is a Nix string literal (escaped, never spliced in as code).
fn expression(flake: &FlakeRef) -> String {
    format!(
        "({HOSTS_EXPRESSION}) (builtins.getFlake {})",
        nix_string(&flake.absolute)
    )
}

/// The arguments of `nix eval --json` (after `eval --json`), for `Nix::eval_json`.
fn eval_arguments(flake: &FlakeRef) -> Vec<String> {
    // --impure: builtins.getFlake refuses a reference that is not locked (a local directory)
    // in pure evaluation.
    vec!["--impure".into(), "--expr".into(), expression(flake)]
}

/// The inventory of `run --inventory-from-flake REF`.
pub fn inventory(nix: &Nix, flake: &str) -> anyhow::Result<Inventory> {
    let context = format!("--inventory-from-flake {flake}");
    let reference = FlakeRef::parse(flake).map_err(|error| match error {
        FlakeError::Fragment(_) => anyhow::anyhow!(
            "{context}: give the flake without `#`; its hosts are read from its nixosConfigurations, colmenaHive and deploy outputs"
        ),
        FlakeError::LocalPath { source, .. } => anyhow::anyhow!(
            "{context}: {source}; give a flake's directory or a reference such as github:OWNER/REPO"
        ),
        other => anyhow::anyhow!("{context}: {other}"),
    })?;
    let value = nix
        .eval_json(&eval_arguments(&reference))
        .map_err(|error| nix_failure(&context, flake, error))?;
    let found: Found = serde_json::from_value(value).map_err(|error| {
        anyhow::anyhow!("{context}: nix printed hosts in a shape the harness cannot read ({error})")
    })?;
    hosts_of(flake, found).map_err(anyhow::Error::msg)
}

/// Nix's own error, without the command line: it holds all of flake_hosts.nix.
fn nix_failure(context: &str, flake: &str, error: NixError) -> anyhow::Error {
    match error {
        // Every Nix version names flake.nix when the reference holds none, each in its own words.
        NixError::Failed { message, .. } if message.contains("flake.nix") => {
            anyhow::anyhow!("{context}: {flake} is not a flake (it has no flake.nix):\n{message}")
        }
        NixError::Failed { message, .. } => {
            anyhow::anyhow!("{context}: cannot read the flake's configurations:\n{message}")
        }
        NixError::Output {
            problem, output, ..
        } => anyhow::anyhow!("{context}: nix eval printed {problem}:\n{output}"),
        other => anyhow::anyhow!("{context}: {other}"),
    }
}

/// The inventory from what flake_hosts.nix found, or every problem, one per line.
fn hosts_of(flake: &str, found: Found) -> Result<Inventory, String> {
    let source = format!("flake {flake}");
    if !found.broken.is_empty() {
        return Err(format!(
            "{source}: cannot evaluate {}; run `nix eval {flake}#ATTRIBUTE --show-trace` with it to see why",
            found.broken.join(", ")
        ));
    }
    if found.hosts.is_empty() {
        return Err(nothing_enabled(flake, &found));
    }
    let mut problems = Vec::new();
    let mut hosts = Vec::new();
    for entry in &found.hosts {
        match host(entry) {
            Ok(host) => hosts.push(host),
            Err(mut messages) => problems.append(&mut messages),
        }
    }
    for host in &hosts {
        for tag in &host.tags {
            if hosts.iter().any(|other| other.name == *tag) {
                problems.push(format!(
                    "host `{}`: tag `{tag}` is also a host's name; --hosts could not tell them apart, so rename one",
                    host.name
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(Inventory { source, hosts })
    } else {
        Err(problems
            .iter()
            .map(|problem| format!("{source}: {problem}"))
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

fn nothing_enabled(flake: &str, found: &Found) -> String {
    let mut message = format!("no configuration of {flake} enables services.bitpoll; ");
    let present = &found.present;
    if !present.nixos_configurations && !present.colmena_hive {
        message.push_str("it has no nixosConfigurations or colmenaHive output");
    } else if found.disabled.is_empty() {
        message.push_str("its nixosConfigurations and colmenaHive nodes are empty");
    } else {
        message.push_str(&format!(
            "its configurations {} import the module without services.bitpoll.enable = true, or do not import it",
            found.disabled.join(", ")
        ));
    }
    if present.colmena && !present.colmena_hive {
        message.push_str(
            "; its `colmena` output is a hive only colmena evaluates: expose `colmenaHive = colmena.lib.makeHive self.outputs.colmena;` as colmena's README says",
        );
    }
    message
}

/// One host, or what is wrong with it.
fn host(entry: &FoundHost) -> Result<Host, Vec<String>> {
    let name = &entry.name;
    let mut problems = Vec::new();
    if let Err(message) = check_name("host name", name) {
        problems.push(format!("{}.{name}: {message}", entry.source));
    }
    for tag in &entry.tags {
        if let Err(message) = check_name("tag", tag) {
            problems.push(format!("host `{name}`: deployment.tags: {message}"));
        }
    }
    let target = target(entry).map_err(|message| format!("host `{name}`: {message}"));
    let base_url = match &entry.base_url {
        None => None,
        Some(url) => match check_base_url(url) {
            Err(message) => {
                problems.push(format!(
                    "host `{name}`: services.bitpoll.baseUrl: {message}"
                ));
                None
            }
            Ok(()) => Some(url.trim_end_matches('/').to_string()),
        },
    };
    let target = match target {
        Ok(target) => target,
        Err(message) => {
            problems.push(message);
            return Err(problems);
        }
    };
    if let Some(url) = &base_url {
        if on_loopback(url) && !is_loopback_host(&target.host) {
            problems.push(format!(
                "host `{name}`: services.bitpoll.baseUrl `{url}` names the machine the harness runs on, not {}, so its http steps would test the wrong server; set services.bitpoll.baseUrl (or allowedHosts, or nginx.hostName) to the URL people reach it at",
                target.host
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Host {
        name: name.clone(),
        target: HostTarget::Ssh(target),
        base_url,
        tags: entry.tags.clone(),
        identity: None,
        known_hosts: None,
        known_hosts_file: None,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        vars: Vec::new(),
    })
}

fn target(entry: &FoundHost) -> Result<SshAddress, String> {
    let found = &entry.target;
    let host = match &found.host {
        Some(host) if !host.trim().is_empty() => host.trim().to_string(),
        _ => {
            return Err(format!(
                "no SSH target: set deployment.targetHost, deploy.nodes.{}.hostname or networking.domain",
                entry.name
            ))
        }
    };
    let from = found.from.as_deref().unwrap_or("the flake");
    let port = match &found.port {
        None | Some(serde_json::Value::Null) => 22,
        Some(value) => port(value).ok_or_else(|| {
            let written = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            format!("the SSH port `{written}` (beside {from}) is not a number from 1 to 65535")
        })?,
    };
    let user = match &found.user {
        Some(user) if !user.is_empty() => user.clone(),
        _ => DEFAULT_USER.to_string(),
    };
    Ok(SshAddress { user, host, port })
}

fn port(value: &serde_json::Value) -> Option<u16> {
    let number = match value {
        serde_json::Value::Number(number) => number.as_u64()?,
        serde_json::Value::String(text) => text.parse().ok()?,
        _ => return None,
    };
    u16::try_from(number).ok().filter(|port| *port != 0)
}

/// Whether a base URL's host is this machine (`localhost`, 127.0.0.0/8, `::1`).
fn on_loopback(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|url| url.host_str().map(is_loopback_host))
        .unwrap_or(false)
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}
