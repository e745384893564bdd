//! The inventory: the hosts of a fleet, as a TOML file checked like a scenario file (every
//! problem as FILE:LINE:COL), or built from a flake's configurations (`flake_hosts`).
//!
//! ```toml
//! [defaults]                      # optional; every key a host may set except name and target
//! identity = "keys/fleet"         # relative paths are relative to the inventory file
//! known_hosts = "strict"          # or "accept-new"
//! connect_timeout = "10s"
//! [defaults.vars]
//! admin_user = "ops"
//!
//! [[host]]
//! name = "berlin"
//! target = "ssh://root@berlin.example.org"
//! base_url = "https://polls.berlin.example.org"
//! tags = ["production", "eu"]
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use crate::target::local::LocalTarget;
use crate::target::ssh::{default_known_hosts, HostKeyPolicy, SshAddress, SshOptions, SshTarget};
use crate::target::Target;

/// How long a host may take to accept the connection and finish the SSH handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// The file it came from, or a description such as `flake .#`.
    pub source: String,
    pub hosts: Vec<Host>,
}

/// A `[vars]` override with where it was written, for the error when no scenario declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarOverride {
    pub name: String,
    pub value: String,
    /// `FILE:LINE:COL`, or the place a flake took it from.
    pub location: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    pub target: HostTarget,
    pub base_url: Option<String>,
    pub tags: Vec<String>,
    pub identity: Option<PathBuf>,
    /// Unset: `--known-hosts` (or its variable) decides, else `strict`.
    pub known_hosts: Option<HostKeyPolicy>,
    pub known_hosts_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// The defaults' `[vars]` then the host's own, a later one of a name replacing the earlier.
    pub vars: Vec<VarOverride>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostTarget {
    Local,
    Ssh(SshAddress),
}

impl HostTarget {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "local" {
            Ok(Self::Local)
        } else {
            SshAddress::parse(text).map(Self::Ssh)
        }
    }
}

impl std::fmt::Display for HostTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local => f.write_str("local"),
            Self::Ssh(address) => write!(f, "{address}"),
        }
    }
}

/// Host names and tags: what `--hosts` matches, JUnit suite names and file names may hold.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{kind} `{name}` must be letters, digits, `-`, `_` or `.` (it names the host in --hosts, reports and JUnit)"
        ))
    }
}

/// A base URL must be absolute http(s) with a host: every http step is relative to it.
pub fn check_base_url(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text).map_err(|error| {
        format!("base_url `{text}` is not a URL ({error}); write it as http://HOST[:PORT]")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "base_url `{text}` must be an http:// or https:// URL with a host"
        ));
    }
    Ok(())
}

/// A path as written in the inventory: `~/` is the home directory, a relative path is relative
/// to the inventory's directory (so an inventory works from any working directory).
pub fn resolve_path(written: &str, inventory_dir: &Path) -> PathBuf {
    if let Some(rest) = written.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let path = Path::new(written);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        inventory_dir.join(path)
    }
}

impl Host {
    /// The target to run this host's commands on: this machine, or one SSH session.
    pub fn connect(&self) -> Result<Arc<dyn Target>, String> {
        match &self.target {
            HostTarget::Local => Ok(Arc::new(LocalTarget)),
            HostTarget::Ssh(address) => {
                let options = SshOptions {
                    identity: self.identity.clone(),
                    policy: self.known_hosts.unwrap_or(HostKeyPolicy::Strict),
                    known_hosts: self
                        .known_hosts_file
                        .clone()
                        .unwrap_or_else(default_known_hosts),
                    connect_timeout: self.connect_timeout,
                };
                SshTarget::connect(address.clone(), &options)
                    .map(|target| Arc::new(target) as Arc<dyn Target>)
                    .map_err(|error| error.to_string())
            }
        }
    }
}

impl Inventory {
    /// The hosts `--hosts` names: each item a host name or a tag, in inventory order, each host
    /// once. An empty selection is every host.
    pub fn select(&self, items: &[String]) -> Result<Vec<Host>, String> {
        let items: Vec<&str> = items
            .iter()
            .flat_map(|item| item.split(','))
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .collect();
        if items.is_empty() {
            return Ok(self.hosts.clone());
        }
        let mut unknown = Vec::new();
        for item in &items {
            let known = self.hosts.iter().any(|host| {
                host.name.eq_ignore_ascii_case(item)
                    || host.tags.iter().any(|tag| tag.eq_ignore_ascii_case(item))
            });
            if !known {
                unknown.push(*item);
            }
        }
        if !unknown.is_empty() {
            let mut tags: Vec<&str> = self
                .hosts
                .iter()
                .flat_map(|host| host.tags.iter().map(String::as_str))
                .collect();
            tags.sort_unstable();
            tags.dedup();
            let names: Vec<&str> = self.hosts.iter().map(|host| host.name.as_str()).collect();
            return Err(format!(
                "--hosts: no host or tag `{}` in {}; hosts: {}; tags: {}",
                unknown.join("`, `"),
                self.source,
                names.join(", "),
                if tags.is_empty() {
                    "none".to_string()
                } else {
                    tags.join(", ")
                }
            ));
        }
        Ok(self
            .hosts
            .iter()
            .filter(|host| {
                items.iter().any(|item| {
                    host.name.eq_ignore_ascii_case(item)
                        || host.tags.iter().any(|tag| tag.eq_ignore_ascii_case(item))
                })
            })
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, tags: &[&str]) -> Host {
        Host {
            name: name.into(),
            target: HostTarget::Local,
            base_url: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            identity: None,
            known_hosts: None,
            known_hosts_file: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            vars: Vec::new(),
        }
    }

    fn inventory() -> Inventory {
        Inventory {
            source: "fleet.toml".into(),
            hosts: vec![
                host("a", &["prod", "eu"]),
                host("b", &["staging"]),
                host("c", &["prod"]),
            ],
        }
    }

    fn names(hosts: &[Host]) -> Vec<&str> {
        hosts.iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn selects_by_name_and_tag_in_inventory_order_once() {
        let inventory = inventory();
        assert_eq!(names(&inventory.select(&[]).unwrap()), ["a", "b", "c"]);
        let picked = inventory.select(&["c,prod".into(), "b".into()]).unwrap();
        assert_eq!(names(&picked), ["a", "b", "c"]);
        assert_eq!(names(&inventory.select(&["eu".into()]).unwrap()), ["a"]);
    }

    #[test]
    fn an_unknown_selection_lists_hosts_and_tags() {
        let error = inventory().select(&["prod,nowhere".into()]).unwrap_err();
        assert!(
            error.contains("no host or tag `nowhere` in fleet.toml"),
            "{error}"
        );
        assert!(
            error.contains("hosts: a, b, c; tags: eu, prod, staging"),
            "{error}"
        );
    }

    #[test]
    fn names_urls_and_targets_are_checked() {
        assert!(check_name("host name", "berlin-1.prod").is_ok());
        assert!(check_name("host name", "a b").is_err());
        assert!(check_base_url("http://127.0.0.1:8080").is_ok());
        assert!(check_base_url("ftp://x").is_err());
        assert!(check_base_url("127.0.0.1:8080").is_err());
        assert_eq!(HostTarget::parse("local"), Ok(HostTarget::Local));
        assert!(HostTarget::parse("ssh://host").is_err());
    }
}
