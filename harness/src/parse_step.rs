//! One `[[step]]` table: its action, expectations, captures and policies.

use regex::Regex;
use toml_edit::TableLike;

use crate::parse::Parser;
use crate::scenario::{
    Action, Capability, Capture, CaptureSource, Expect, HeaderExpect, HttpRequest, Repeat, Retry,
    Step, TextMatch, DEFAULT_STEP_TIMEOUT,
};
use crate::template;
use crate::toml_reader::{type_name, Reader, Span};

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
const MATCH_KEYS: &[&str] = &["equals", "contains", "not_contains", "regex"];
const HEADER_MATCH_KEYS: &[&str] = &["equals", "contains", "not_contains", "regex", "absent"];
const CAPTURE_KEYS: &[&str] = &["css", "attr", "header", "from", "regex", "metric"];
const RETRY_KEYS: &[&str] = &["timeout", "interval"];
const REPEAT_KEYS: &[&str] = &["count", "interval"];
const FILE_TYPES: &[&str] = &["file", "directory", "symlink"];

fn expect_keys(action: &str) -> &'static [&'static str] {
    match action {
        "run" | "sh" => &["exit", "stdout", "stderr"],
        "http" => &["status", "headers", "body"],
        "file" => &["exists", "type", "mode", "owner", "group", "content"],
        _ => &["active", "enabled", "properties"],
    }
}

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
        Some((expect, _)) if !kind.is_empty() => parse_expect(parser, expect, kind),
        _ => Expect::default(),
    };
    let captures = match parser.reader.table(table, "capture") {
        Some((captures, _)) if !kind.is_empty() => parse_captures(parser, captures, kind),
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

/// Reads a string that may contain `{{var}}` references and checks them.
fn template_string(parser: &mut Parser, table: &dyn TableLike, key: &str) -> Option<String> {
    let (value, span) = parser.reader.string(table, key)?;
    parser.check_template(&value, span);
    Some(value)
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

fn parse_expect(parser: &mut Parser, expect: &dyn TableLike, kind: &str) -> Expect {
    let allowed = expect_keys(kind);
    parser
        .reader
        .check_keys(expect, allowed, &format!("`expect` of a `{kind}` step"));
    let mut result = Expect::default();
    match kind {
        "run" | "sh" => {
            if let Some((code, span)) = parser.reader.integer(expect, "exit") {
                match i32::try_from(code) {
                    Ok(code) if (0..=255).contains(&code) => result.exit = Some(code),
                    _ => parser.reader.error(
                        span,
                        format!("`exit` {code} is not an exit code; expected 0 to 255"),
                    ),
                }
            }
            result.stdout = text_match(parser, expect, "stdout");
            result.stderr = text_match(parser, expect, "stderr");
        }
        "http" => {
            result.status = parse_status(parser, expect);
            result.headers = parse_header_expects(parser, expect);
            result.body = text_match(parser, expect, "body");
        }
        "file" => {
            result.exists = parser.reader.bool(expect, "exists");
            if let Some((file_type, span)) = parser.reader.string(expect, "type") {
                if FILE_TYPES.contains(&file_type.as_str()) {
                    result.file_type = Some(file_type);
                } else {
                    parser.reader.error(
                        span,
                        format!(
                            "file type `{file_type}` is unknown; expected one of: {}",
                            FILE_TYPES.join(", ")
                        ),
                    );
                }
            }
            if let Some((mode, span)) = parser.reader.string(expect, "mode") {
                let valid =
                    (3..=4).contains(&mode.len()) && mode.chars().all(|c| ('0'..='7').contains(&c));
                if valid {
                    result.mode = Some(format!("{:0>4}", mode));
                } else {
                    parser.reader.error(span, format!("mode `{mode}` is not an octal file mode; expected a string such as \"0600\""));
                }
            }
            result.owner = template_string(parser, expect, "owner");
            result.group = template_string(parser, expect, "group");
            result.content = text_match(parser, expect, "content");
        }
        _ => {
            result.active = template_string(parser, expect, "active");
            result.enabled = template_string(parser, expect, "enabled");
            if let Some((properties, _)) = parser.reader.table(expect, "properties") {
                for (name, _) in properties.iter() {
                    if let Some(matches) = text_match(parser, properties, name) {
                        result.properties.push((name.to_string(), matches));
                    }
                }
            }
        }
    }
    result
}

fn parse_status(parser: &mut Parser, expect: &dyn TableLike) -> Vec<u16> {
    let Some(item) = expect.get("status") else {
        return Vec::new();
    };
    let values: Vec<(Option<i64>, Span)> = if let Some(array) = item.as_array() {
        array
            .iter()
            .map(|value| (value.as_integer(), value.span()))
            .collect()
    } else {
        vec![(item.as_integer(), item.span())]
    };
    let mut statuses = Vec::new();
    for (value, span) in values {
        match value {
            Some(code @ 100..=599) => statuses.push(code as u16),
            _ => parser.reader.error(
                span,
                "`status` must be an HTTP status code (100 to 599) or an array of them",
            ),
        }
    }
    statuses
}

fn parse_header_expects(parser: &mut Parser, expect: &dyn TableLike) -> Vec<HeaderExpect> {
    let Some((headers, _)) = parser.reader.table(expect, "headers") else {
        return Vec::new();
    };
    let mut result = Vec::new();
    for (name, item) in headers.iter() {
        if let Some(table) = item.as_table_like() {
            if parser.reader.bool(table, "absent") == Some(true) {
                parser
                    .reader
                    .check_keys(table, &["absent"], &format!("header `{name}` (absent)"));
                result.push(HeaderExpect {
                    name: name.to_string(),
                    matches: None,
                });
                continue;
            }
            parser
                .reader
                .check_keys(table, HEADER_MATCH_KEYS, &format!("header `{name}`"));
        }
        if let Some(matches) = text_match(parser, headers, name) {
            result.push(HeaderExpect {
                name: name.to_string(),
                matches: Some(matches),
            });
        }
    }
    result
}

/// A text expectation: a plain string means `equals`; a table may combine `equals`,
/// `contains`, `not_contains` and `regex`.
fn text_match(parser: &mut Parser, table: &dyn TableLike, key: &str) -> Option<TextMatch> {
    let item = table.get(key)?;
    if let Some(text) = item.as_str() {
        parser.check_template(text, item.span());
        return Some(TextMatch {
            equals: Some(text.to_string()),
            ..TextMatch::default()
        });
    }
    let Some(inner) = item.as_table_like() else {
        parser.reader.error(
            item.span(),
            format!(
                "`{key}` must be a string (exact match) or a table with {}, found {}",
                MATCH_KEYS.join(", "),
                type_name(item)
            ),
        );
        return None;
    };
    // Header tables were checked by their caller with `absent` allowed.
    if !inner.contains_key("absent") {
        parser
            .reader
            .check_keys(inner, MATCH_KEYS, &format!("`{key}`"));
    }
    let mut matches = TextMatch {
        equals: template_string(parser, inner, "equals"),
        ..TextMatch::default()
    };
    for (field, target) in [
        ("contains", &mut matches.contains),
        ("not_contains", &mut matches.not_contains),
        ("regex", &mut matches.regex),
    ] {
        for (value, span) in parser.reader.strings(inner, field).unwrap_or_default() {
            parser.check_template(&value, span.clone());
            if field == "regex" && template::references(&value).is_empty() {
                if let Err(error) = Regex::new(&value) {
                    parser.reader.error(
                        span,
                        format!("invalid regex: {}", first_line(&error.to_string())),
                    );
                    continue;
                }
            }
            target.push(value);
        }
    }
    Some(matches)
}

fn first_line(text: &str) -> String {
    text.lines().last().unwrap_or(text).trim().to_string()
}

fn parse_captures(parser: &mut Parser, captures: &dyn TableLike, kind: &str) -> Vec<Capture> {
    let mut result = Vec::new();
    for (name, item) in captures.iter() {
        let span = Reader::key_span(captures, name);
        if crate::scenario::BUILTIN_VARS.contains(&name) || !template::is_valid_name(name) {
            parser.reader.error(
                span,
                format!("capture name `{name}` must be letters, digits, `-` or `_` and not a built-in variable"),
            );
            continue;
        }
        let Some(spec) = item.as_table_like() else {
            parser.reader.error(
                item.span(),
                format!("capture `{name}` must be a table such as {{ css = \"input[name=csrfmiddlewaretoken]\", attr = \"value\" }}"),
            );
            continue;
        };
        parser
            .reader
            .check_keys(spec, CAPTURE_KEYS, &format!("capture `{name}`"));
        if let Some(capture) = parse_capture(parser, name, spec, item.span().or(span), kind) {
            result.push(capture);
        }
    }
    result
}

fn parse_capture(
    parser: &mut Parser,
    name: &str,
    spec: &dyn TableLike,
    span: Span,
    kind: &str,
) -> Option<Capture> {
    let css = parser.reader.string(spec, "css");
    let attr = parser.reader.string(spec, "attr").map(|(attr, _)| attr);
    let has_attr = attr.is_some();
    let header = parser.reader.string(spec, "header");
    let from = parser.reader.string(spec, "from");
    let regex = parser.reader.string(spec, "regex");
    if let Some((pattern, regex_span)) = &regex {
        parser.check_template(pattern, regex_span.clone());
    }
    if let Some((pattern, regex_span)) = regex
        .as_ref()
        .filter(|(p, _)| template::references(p).is_empty())
    {
        if let Err(error) = Regex::new(pattern) {
            parser.reader.error(
                regex_span.clone(),
                format!("invalid regex: {}", first_line(&error.to_string())),
            );
        }
    }
    let is_http = kind == "http";
    let is_command = kind == "run" || kind == "sh";
    let sources = [css.is_some(), header.is_some(), from.is_some()];
    if sources.iter().filter(|present| **present).count() > 1 {
        parser.reader.error(
            span,
            format!(
                "capture `{name}` has more than one source; use one of `css`, `header` or `from`"
            ),
        );
        return None;
    }
    let source = if let Some((selector, selector_span)) = css {
        if !is_http {
            parser.reader.error(selector_span, format!("capture `{name}`: `css` reads an HTML response and only goes with `http` steps"));
            return None;
        }
        if let Err(error) = scraper::Selector::parse(&selector) {
            parser.reader.error(
                selector_span,
                format!("capture `{name}`: invalid CSS selector: {error:?}"),
            );
            return None;
        }
        CaptureSource::Css { selector, attr }
    } else if let Some((header, header_span)) = header {
        if !is_http {
            parser.reader.error(
                header_span,
                format!("capture `{name}`: `header` only goes with `http` steps"),
            );
            return None;
        }
        CaptureSource::Header(header)
    } else if let Some((from, from_span)) = from {
        match (from.as_str(), is_http, is_command) {
            ("body", true, _) => CaptureSource::Body,
            ("stdout", _, true) => CaptureSource::Stdout,
            ("stderr", _, true) => CaptureSource::Stderr,
            _ => {
                let expected = if is_http {
                    "body"
                } else if is_command {
                    "stdout or stderr"
                } else {
                    "nothing: this action has no output to capture"
                };
                parser.reader.error(from_span, format!("capture `{name}`: `from = \"{from}\"` does not fit a `{kind}` step; expected {expected}"));
                return None;
            }
        }
    } else if regex.is_some() && is_http {
        CaptureSource::Body
    } else if regex.is_some() && is_command {
        CaptureSource::Stdout
    } else {
        parser.reader.error(span, format!("capture `{name}` has no source; give `css` (with `attr`), `header`, or `regex` (with `from`)"));
        return None;
    };
    if has_attr && !matches!(source, CaptureSource::Css { .. }) {
        parser.reader.error(
            Reader::key_span(spec, "attr"),
            format!("capture `{name}`: `attr` only goes with `css`"),
        );
    }
    Some(Capture {
        name: name.to_string(),
        source,
        regex: regex.map(|(pattern, _)| pattern),
        metric: parser.reader.bool(spec, "metric").unwrap_or(false),
    })
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
