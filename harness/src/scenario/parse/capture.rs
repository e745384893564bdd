//! A step's `capture` tables: where each value comes from, checked against the step's action.

use regex::Regex;
use toml_edit::TableLike;

use super::parser::{first_line, Parser};
use super::toml_reader::{Reader, Span};
use crate::scenario::{template, Capture, CaptureSource, BUILTIN_VARS};

const CAPTURE_KEYS: &[&str] = &["css", "attr", "header", "from", "regex", "metric"];

pub(crate) fn parse_captures(
    parser: &mut Parser,
    captures: &dyn TableLike,
    kind: &str,
) -> Vec<Capture> {
    let mut result = Vec::new();
    for (name, item) in captures.iter() {
        let span = Reader::key_span(captures, name);
        if BUILTIN_VARS.contains(&name) || !template::is_valid_name(name) {
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
