//! The state the parse modules share: the reader that records problems, the variables defined
//! so far, and the checks of `{{var}}` references against them.

use std::collections::BTreeSet;

use toml_edit::{Item, TableLike};

use super::toml_reader::{Reader, Span};
use crate::scenario::diagnostic::SourceMap;
use crate::scenario::{template, BUILTIN_VARS};

pub(crate) struct Parser<'a> {
    pub reader: Reader<'a>,
    /// The variables defined so far, in step order: built-ins, `[vars]`, earlier captures.
    pub defined: BTreeSet<String>,
    text: &'a str,
}

impl<'a> Parser<'a> {
    /// A parser of `text` with only the built-in variables defined.
    pub fn new(map: SourceMap<'a>, text: &'a str) -> Self {
        Parser {
            reader: Reader::new(map),
            defined: BUILTIN_VARS.iter().map(|name| name.to_string()).collect(),
            text,
        }
    }

    /// Checks that every `{{var}}` in `value` is defined at this point of the scenario.
    pub fn check_template(&mut self, value: &str, span: Span) {
        for reference in template::references(value) {
            if self.defined.contains(reference) {
                continue;
            }
            let position = self.reference_span(reference, span.clone());
            let known: Vec<&str> = self.defined.iter().map(String::as_str).collect();
            self.reader.error(
                position,
                format!(
                    "`{{{{{reference}}}}}` is not defined here; define it in [vars] or capture it in an earlier step (defined: {})",
                    known.join(", ")
                ),
            );
        }
    }

    /// Checks the references of every string value below a table (keys are names, no templates).
    pub fn check_templates_in(&mut self, table: &dyn TableLike) {
        fn strings<'t>(item: &'t Item, found: &mut Vec<(&'t str, Span)>) {
            match item {
                Item::Value(value) => values(value, found),
                Item::Table(table) => table.iter().for_each(|(_, item)| strings(item, found)),
                Item::ArrayOfTables(tables) => tables
                    .iter()
                    .for_each(|table| table.iter().for_each(|(_, item)| strings(item, found))),
                Item::None => {}
            }
        }
        fn values<'t>(value: &'t toml_edit::Value, found: &mut Vec<(&'t str, Span)>) {
            match value {
                toml_edit::Value::String(text) => found.push((text.value(), value.span())),
                toml_edit::Value::Array(array) => array.iter().for_each(|v| values(v, found)),
                toml_edit::Value::InlineTable(table) => {
                    table.iter().for_each(|(_, v)| values(v, found))
                }
                _ => {}
            }
        }
        let mut found = Vec::new();
        table.iter().for_each(|(_, item)| strings(item, &mut found));
        for (text, span) in found {
            self.check_template(text, span);
        }
    }

    /// Points at the reference itself inside the string when the source has it verbatim.
    fn reference_span(&self, reference: &str, span: Span) -> Span {
        let range = span.clone()?;
        let raw = self.text.get(range.clone())?;
        let offset = raw
            .match_indices("{{")
            .find(|(index, _)| {
                raw[index + 2..]
                    .split("}}")
                    .next()
                    .is_some_and(|inner| inner.trim() == reference)
            })
            .map(|(index, _)| index);
        offset
            .map(|offset| range.start + offset..range.start + offset + 2)
            .or(span)
    }
}

/// Reads a string that may contain `{{var}}` references and checks them.
pub(crate) fn template_string(
    parser: &mut Parser,
    table: &dyn TableLike,
    key: &str,
) -> Option<String> {
    let (value, span) = parser.reader.string(table, key)?;
    parser.check_template(&value, span);
    Some(value)
}

/// The line of a multi-line error message that says what is wrong: the last, as in regex errors.
pub(crate) fn first_line(text: &str) -> String {
    text.lines().last().unwrap_or(text).trim().to_string()
}
