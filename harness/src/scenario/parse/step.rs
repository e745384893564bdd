//! One `[[step]]` table: its action and policies; expectations and captures have modules of
//! their own (`expect`, `capture`).

use toml_edit::TableLike;

use super::parser::{template_string, Parser};
use super::toml_reader::{type_name, Reader, Span};
use super::{capture, expect};
use crate::scenario::{
    template, Action, Capability, Expect, HttpRequest, Repeat, Retry, Step, DEFAULT_STEP_TIMEOUT,
};

const STEP_KEYS: &[&str] = &[
    "name",
    "run",
    "sh",
    "http",
    "file",
    "unit",
    "wait_for_unit",
    "stdin",
    "expect",
    "capture",
    "retry",
    "repeat",
    "always",
    "timeout",
    "requires",
    "metric",
];
const HTTP_KEYS: &[&str] = &[
    "method",
    "path",
    "headers",
    "form",
    "body",
    "follow_redirects",
];
const HTTP_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const RETRY_KEYS: &[&str] = &["timeout", "interval"];
const REPEAT_KEYS: &[&str] = &["count", "interval"];

pub(crate) fn parse_step(parser: &mut Parser, table: &dyn TableLike, span: Span) -> Option<Step> {
    let line = parser
        .reader
        .map
        .position(span.clone().map_or(0, |s| s.start))
        .0;
    parser.reader.check_keys(table, STEP_KEYS, "[[step]]");
    let name = parser
        .reader
        .required_string(table, span.clone(), "name", "[[step]]")
        .map(|(name, _)| name);
    let label = name
        .as_deref()
        .map_or_else(|| "[[step]]".to_string(), |name| format!("step `{name}`"));

    let action_keys: Vec<&str> = Action::KEYS
        .iter()
        .copied()
        .filter(|key| table.get(key).is_some())
        .collect();
    let action = match action_keys.as_slice() {
        [] => {
            parser.reader.error(
                span.clone(),
                format!(
                    "{label} has no action; expected exactly one of: {}",
                    Action::KEYS.join(", ")
                ),
            );
            None
        }
        [key] => parse_action(parser, table, key),
        [first, second, ..] => {
            parser.reader.error(
                Reader::key_span(table, second),
                format!(
                    "{label} has two actions, `{first}` and `{second}`; expected exactly one of: {}",
                    Action::KEYS.join(", ")
                ),
            );
            None
        }
    };

    let stdin = parser.reader.string(table, "stdin");
    let action = action.map(|action| attach_stdin(parser, table, action, stdin));
    let kind = action.as_ref().map_or("", Action::kind);

    let expect = match parser.reader.table(table, "expect") {
        Some((expect, _)) if !kind.is_empty() => expect::parse_expect(parser, expect, kind),
        _ => Expect::default(),
    };
    let captures = match parser.reader.table(table, "capture") {
        Some((captures, _)) if !kind.is_empty() => capture::parse_captures(parser, captures, kind),
        _ => Vec::new(),
    };
    let retry = parser
        .reader
        .table(table, "retry")
        .and_then(|(retry, retry_span)| parse_retry(parser, retry, retry_span));
    let repeat = parser
        .reader
        .table(table, "repeat")
        .and_then(|(repeat, repeat_span)| parse_repeat(parser, repeat, repeat_span));
    if let (Some(_), Some(_)) = (&retry, &repeat) {
        parser.reader.error(
            Reader::key_span(table, "repeat"),
            format!("{label} has both `retry` and `repeat`; a step either waits for a condition or checks it many times"),
        );
    }
    let always = parser.reader.bool(table, "always").unwrap_or(false);
    let timeout = parser
        .reader
        .duration(table, "timeout")
        .unwrap_or(DEFAULT_STEP_TIMEOUT);
    let requires = parse_requires(parser, table);
    let metric = parser
        .reader
        .string(table, "metric")
        .and_then(|(metric, span)| {
            if template::is_valid_name(&metric) {
                Some(metric)
            } else {
                parser.reader.error(
                    span,
                    format!("metric name `{metric}` must be letters, digits, `-` or `_`"),
                );
                None
            }
        });

    Some(Step {
        name: name?,
        line,
        action: action?,
        expect,
        captures,
        retry,
        repeat,
        always,
        timeout,
        requires,
        metric,
    })
}

fn parse_action(parser: &mut Parser, table: &dyn TableLike, key: &str) -> Option<Action> {
    match key {
        "run" => {
            let argv = parser.reader.string_array(
                table,
                "run",
                "an array of strings (the argv; use `sh` for a shell command line)",
            )?;
            if argv.is_empty() {
                parser.reader.error(
                    table.get("run").and_then(|item| item.span()),
                    "`run` is empty; give the program and its arguments, such as [\"systemctl\", \"is-active\", \"bitpoll\"]",
                );
                return None;
            }
            for (arg, span) in &argv {
                parser.check_template(arg, span.clone());
            }
            Some(Action::Run {
                argv: argv.into_iter().map(|(arg, _)| arg).collect(),
                stdin: None,
            })
        }
        "sh" => template_string(parser, table, "sh").map(|script| Action::Sh {
            script,
            stdin: None,
        }),
        "http" => parse_http(parser, table),
        "file" => template_string(parser, table, "file").map(|path| Action::File { path }),
        "unit" => template_string(parser, table, "unit").map(|name| Action::Unit { name }),
        _ => {
            template_string(parser, table, "wait_for_unit").map(|name| Action::WaitForUnit { name })
        }
    }
}

fn attach_stdin(
    parser: &mut Parser,
    table: &dyn TableLike,
    action: Action,
    stdin: Option<(String, Span)>,
) -> Action {
    let Some((text, span)) = stdin else {
        return action;
    };
    parser.check_template(&text, span);
    match action {
        Action::Run { argv, .. } => Action::Run {
            argv,
            stdin: Some(text),
        },
        Action::Sh { script, .. } => Action::Sh {
            script,
            stdin: Some(text),
        },
        other => {
            parser.reader.error(
                Reader::key_span(table, "stdin"),
                format!(
                    "`stdin` only goes with `run` or `sh`, not with `{}`",
                    other.kind()
                ),
            );
            other
        }
    }
}

fn parse_http(parser: &mut Parser, step: &dyn TableLike) -> Option<Action> {
    let item = step.get("http")?;
    // `http = "/path"` is a plain GET.
    if let Some(path) = item.as_str() {
        parser.check_template(path, item.span());
        check_http_path(parser, path, item.span());
        return Some(Action::Http(HttpRequest {
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
            form: Vec::new(),
            body: None,
            follow_redirects: false,
        }));
    }
    let Some(table) = item.as_table_like() else {
        parser.reader.error(
            item.span(),
            format!(
                "`http` must be a path string or a table with `path`, found {}",
                type_name(item)
            ),
        );
        return None;
    };
    let span = item.span().or_else(|| Reader::key_span(step, "http"));
    parser.reader.check_keys(table, HTTP_KEYS, "`http`");
    let method = match parser.reader.string(table, "method") {
        Some((method, method_span)) => {
            let upper = method.to_ascii_uppercase();
            if !HTTP_METHODS.contains(&upper.as_str()) {
                parser.reader.error(
                    method_span,
                    format!(
                        "`{method}` is not an HTTP method; expected one of: {}",
                        HTTP_METHODS.join(", ")
                    ),
                );
            }
            upper
        }
        None => "GET".to_string(),
    };
    let (path, path_span) = parser
        .reader
        .required_string(table, span, "path", "`http`")?;
    parser.check_template(&path, path_span.clone());
    check_http_path(parser, &path, path_span);
    let headers = string_pairs(parser, table, "headers", false);
    let form = string_pairs(parser, table, "form", true);
    let body = template_string(parser, table, "body");
    if body.is_some() && !form.is_empty() {
        parser.reader.error(
            Reader::key_span(table, "body"),
            "`http` has both `form` and `body`; send one of them",
        );
    }
    let follow_redirects = parser
        .reader
        .bool(table, "follow_redirects")
        .unwrap_or(false);
    Some(Action::Http(HttpRequest {
        method,
        path,
        headers,
        form,
        body,
        follow_redirects,
    }))
}

fn check_http_path(parser: &mut Parser, path: &str, span: Span) {
    let absolute = path.starts_with("http://") || path.starts_with("https://");
    if !path.starts_with('/') && !path.starts_with("{{") && !absolute {
        parser.reader.error(
            span,
            format!("http path `{path}` must start with `/` (relative to --base-url) or be an absolute http(s) URL"),
        );
    }
}

/// A table of strings (`headers`), or of strings and string arrays (`form`, whose fields repeat).
fn string_pairs(
    parser: &mut Parser,
    table: &dyn TableLike,
    key: &str,
    allow_repeats: bool,
) -> Vec<(String, String)> {
    let Some((pairs, _)) = parser.reader.table(table, key) else {
        return Vec::new();
    };
    let mut result = Vec::new();
    for (name, _) in pairs.iter() {
        // Field names may be templates too: Bitpoll's vote form names its fields by choice id.
        parser.check_template(name, Reader::key_span(pairs, name));
        let values = if allow_repeats {
            parser.reader.strings(pairs, name)
        } else {
            parser.reader.string(pairs, name).map(|value| vec![value])
        };
        for (value, span) in values.unwrap_or_default() {
            parser.check_template(&value, span);
            result.push((name.to_string(), value));
        }
    }
    result
}

fn parse_retry(parser: &mut Parser, retry: &dyn TableLike, span: Span) -> Option<Retry> {
    parser.reader.check_keys(retry, RETRY_KEYS, "`retry`");
    if retry.get("timeout").is_none() {
        parser.reader.error(
            span,
            "`retry` has no `timeout`; add one such as timeout = \"30s\"",
        );
        return None;
    }
    let timeout = parser.reader.duration(retry, "timeout")?;
    let interval = parser
        .reader
        .duration(retry, "interval")
        .unwrap_or(std::time::Duration::from_secs(1));
    Some(Retry { timeout, interval })
}

fn parse_repeat(parser: &mut Parser, repeat: &dyn TableLike, span: Span) -> Option<Repeat> {
    parser.reader.check_keys(repeat, REPEAT_KEYS, "`repeat`");
    let Some((count, count_span)) = parser.reader.integer(repeat, "count") else {
        if repeat.get("count").is_none() {
            parser
                .reader
                .error(span, "`repeat` has no `count`; add one such as count = 200");
        }
        return None;
    };
    let Some(count) = u32::try_from(count)
        .ok()
        .filter(|count| (1..=100_000).contains(count))
    else {
        parser.reader.error(
            count_span,
            format!("`count` {count} is out of range; expected 1 to 100000"),
        );
        return None;
    };
    let interval = parser
        .reader
        .duration(repeat, "interval")
        .unwrap_or_default();
    Some(Repeat { count, interval })
}

fn parse_requires(parser: &mut Parser, table: &dyn TableLike) -> Vec<Capability> {
    let Some(names) = parser.reader.strings(table, "requires") else {
        return Vec::new();
    };
    let mut result = Vec::new();
    for (name, span) in names {
        match Capability::from_name(&name) {
            Some(capability) => result.push(capability),
            None => parser.reader.error(
                span,
                format!(
                    "`{name}` is not a capability; expected one of: {}",
                    Capability::NAMES.join(", ")
                ),
            ),
        }
    }
    result
}
