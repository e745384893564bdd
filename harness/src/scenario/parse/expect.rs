//! A step's `expect` table: which expectations fit which action, and text matches.

use regex::Regex;
use toml_edit::TableLike;

use super::parser::{first_line, template_string, Parser};
use super::toml_reader::{type_name, Span};
use crate::scenario::{template, Expect, HeaderExpect, TextMatch};

const MATCH_KEYS: &[&str] = &["equals", "contains", "not_contains", "regex"];
const HEADER_MATCH_KEYS: &[&str] = &["equals", "contains", "not_contains", "regex", "absent"];
const FILE_TYPES: &[&str] = &["file", "directory", "symlink"];

fn expect_keys(action: &str) -> &'static [&'static str] {
    match action {
        "run" | "sh" => &["exit", "stdout", "stderr"],
        "http" => &["status", "headers", "body"],
        "file" => &["exists", "type", "mode", "owner", "group", "content"],
        _ => &["active", "enabled", "properties"],
    }
}

pub(crate) fn parse_expect(parser: &mut Parser, expect: &dyn TableLike, kind: &str) -> Expect {
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
