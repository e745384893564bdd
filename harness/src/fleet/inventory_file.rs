//! Reading an inventory file: every problem (unknown key, wrong type, duplicate name, bad URL
//! or target) becomes one diagnostic located at FILE:LINE:COL, and all of them are reported at
//! once, as for scenario files.

use std::collections::BTreeMap;
use std::path::Path;

use toml_edit::TableLike;

use super::inventory::{
    check_base_url, check_name, resolve_path, Host, HostTarget, Inventory, VarOverride,
    DEFAULT_CONNECT_TIMEOUT,
};
use crate::scenario::diagnostic::{Diagnostics, SourceMap};
use crate::scenario::parse::toml_reader::{parse_toml, read_file, Reader, Span};
use crate::target::ssh::HostKeyPolicy;

const TOP_KEYS: &[&str] = &["defaults", "host"];
/// What a host and the defaults share.
const SHARED_KEYS: &[&str] = &[
    "base_url",
    "identity",
    "known_hosts",
    "known_hosts_file",
    "connect_timeout",
    "tags",
    "vars",
];
const HOST_ONLY_KEYS: &[&str] = &["name", "target"];

/// The settings a host may inherit from `[defaults]`, as read.
#[derive(Default, Clone)]
struct Settings {
    base_url: Option<String>,
    identity: Option<String>,
    known_hosts: Option<HostKeyPolicy>,
    known_hosts_file: Option<String>,
    connect_timeout: Option<std::time::Duration>,
    tags: Option<Vec<String>>,
    vars: Vec<VarOverride>,
}

/// Reads and checks an inventory file.
pub fn load(file: &Path) -> Result<Inventory, Diagnostics> {
    let text = read_file(file, "the inventory")?;
    parse(file, &text)
}

/// Parses inventory text; `file` names the file in diagnostics and anchors relative paths.
pub fn parse(file: &Path, text: &str) -> Result<Inventory, Diagnostics> {
    let map = SourceMap::new(file, text);
    let document = parse_toml(&map, text)?;
    let mut reader = Reader::new(map);
    let root = document.as_table();
    reader.check_keys(root, TOP_KEYS, "the inventory");
    let defaults = match reader.table(root, "defaults") {
        Some((table, _)) => {
            let allowed: Vec<&str> = SHARED_KEYS.to_vec();
            reader.check_keys(table, &allowed, "[defaults]");
            settings(&mut reader, table, "[defaults]")
        }
        None => Settings::default(),
    };
    let dir = file.parent().unwrap_or(Path::new("."));
    let hosts = hosts(&mut reader, root, &defaults, dir);
    reader.finish(Inventory {
        source: file.display().to_string(),
        hosts,
    })
}

fn hosts(reader: &mut Reader, root: &dyn TableLike, defaults: &Settings, dir: &Path) -> Vec<Host> {
    let Some(item) = root.get("host") else {
        reader.error(
            Some(0..0),
            "the inventory has no hosts; add a [[host]] table with `name` and `target`",
        );
        return Vec::new();
    };
    let Some(array) = item.as_array_of_tables() else {
        reader.error(
            item.span(),
            "`host` must be an array of tables: write each host as [[host]]",
        );
        return Vec::new();
    };
    let allowed: Vec<&str> = HOST_ONLY_KEYS.iter().chain(SHARED_KEYS).copied().collect();
    let mut first_of_name: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut hosts = Vec::new();
    for (index, table) in array.iter().enumerate() {
        let span = table.span();
        let context = format!("[[host]] number {}", index + 1);
        reader.check_keys(table, &allowed, &context);
        let name = reader.required_string(table, span.clone(), "name", &context);
        let target = reader.required_string(table, span.clone(), "target", &context);
        let own = settings(reader, table, &context);
        let Some((name, name_span)) = name else {
            continue;
        };
        if let Err(message) = check_name("host name", &name) {
            reader.error(name_span.clone(), message);
        }
        let place = location(reader, name_span.clone());
        // Names that differ only in case would collide in case-insensitive CI result stores
        // and file systems (JUnit suites, report files), so they count as the same name.
        let key = name.to_ascii_lowercase();
        if let Some((first, first_name)) = first_of_name.get(&key) {
            let how = if *first_name == name {
                String::new()
            } else {
                format!(" (differing only in case from `{first_name}`)")
            };
            reader.error(
                name_span,
                format!("host `{name}` is named twice{how} (first at {first}); give each host its own name"),
            );
        } else {
            first_of_name.insert(key, (place, name.clone()));
        }
        let Some((target, target_span)) = target else {
            continue;
        };
        let target = match HostTarget::parse(&target) {
            Ok(target) => target,
            Err(message) => {
                reader.error(target_span, format!("`target`: {message}"));
                continue;
            }
        };
        hosts.push(merge(name, target, defaults, own, dir));
    }
    let defaults_tags = root
        .get("defaults")
        .and_then(|item| item.as_table_like())
        .and_then(|table| table.get("tags"))
        .and_then(|item| item.as_array());
    let tag_arrays = array
        .iter()
        .filter_map(|table| table.get("tags").and_then(|item| item.as_array()))
        .chain(defaults_tags);
    check_tags_against_names(reader, tag_arrays, &hosts);
    hosts
}

/// A tag spelled like a host name (in [defaults] or a host's own) would make `--hosts`
/// ambiguous.
fn check_tags_against_names<'t>(
    reader: &mut Reader,
    tag_arrays: impl Iterator<Item = &'t toml_edit::Array>,
    hosts: &[Host],
) {
    for tags in tag_arrays {
        for tag in tags.iter() {
            if let Some(text) = tag.as_str() {
                if hosts
                    .iter()
                    .any(|host| host.name.eq_ignore_ascii_case(text))
                {
                    reader.error(
                        tag.span(),
                        format!("tag `{text}` is also a host's name; --hosts could not tell them apart, so rename one"),
                    );
                }
            }
        }
    }
}

fn location(reader: &Reader, span: Span) -> String {
    let diagnostic = reader.map.diagnostic(span, "");
    format!(
        "{}:{}:{}",
        diagnostic.file.display(),
        diagnostic.line,
        diagnostic.column
    )
}

fn settings(reader: &mut Reader, table: &dyn TableLike, context: &str) -> Settings {
    let mut settings = Settings::default();
    if let Some((url, span)) = reader.string(table, "base_url") {
        match check_base_url(&url) {
            Ok(()) => settings.base_url = Some(url.trim_end_matches('/').to_string()),
            Err(message) => reader.error(span, message),
        }
    }
    settings.identity = reader.string(table, "identity").map(|(text, _)| text);
    settings.known_hosts_file = reader.string(table, "known_hosts_file").map(|(t, _)| t);
    if let Some((policy, span)) = reader.string(table, "known_hosts") {
        settings.known_hosts = match policy.as_str() {
            "strict" => Some(HostKeyPolicy::Strict),
            "accept-new" => Some(HostKeyPolicy::AcceptNew),
            other => {
                reader.error(
                    span,
                    format!("`known_hosts` is `{other}`; expected `strict` or `accept-new`"),
                );
                None
            }
        };
    }
    settings.connect_timeout = reader.duration(table, "connect_timeout");
    if let Some(tags) = reader.string_array(table, "tags", "an array of strings") {
        for (tag, span) in &tags {
            if let Err(message) = check_name("tag", tag) {
                reader.error(span.clone(), message);
            }
        }
        settings.tags = Some(tags.into_iter().map(|(tag, _)| tag).collect());
    }
    if let Some((vars, _)) = reader.table(table, "vars") {
        for (name, item) in vars.iter() {
            let span = Reader::key_span(vars, name);
            match item.as_str() {
                Some(value) => settings.vars.push(VarOverride {
                    name: name.to_string(),
                    value: value.to_string(),
                    location: location(reader, span),
                }),
                None => reader.error(
                    item.span().or(span),
                    format!("{context} vars: `{name}` must be a string, as scenario variables are"),
                ),
            }
        }
    }
    settings
}

fn merge(name: String, target: HostTarget, defaults: &Settings, own: Settings, dir: &Path) -> Host {
    let pick = |own: Option<String>, default: &Option<String>| own.or_else(|| default.clone());
    let mut vars = defaults.vars.clone();
    for var in own.vars {
        vars.retain(|existing| existing.name != var.name);
        vars.push(var);
    }
    Host {
        name,
        target,
        base_url: pick(own.base_url, &defaults.base_url),
        tags: own
            .tags
            .or_else(|| defaults.tags.clone())
            .unwrap_or_default(),
        identity: pick(own.identity, &defaults.identity).map(|p| resolve_path(&p, dir)),
        known_hosts: own.known_hosts.or(defaults.known_hosts),
        known_hosts_file: pick(own.known_hosts_file, &defaults.known_hosts_file)
            .map(|p| resolve_path(&p, dir)),
        connect_timeout: own
            .connect_timeout
            .or(defaults.connect_timeout)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        vars,
    }
}
