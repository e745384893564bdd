//! Typed access to a TOML document that records every problem with its position.
//!
//! The scenario parser reads through this so that each wrong type or unknown key becomes one
//! diagnostic and parsing carries on: a user sees all the problems of a file at once.

use std::ops::Range;

use std::path::Path;

use toml_edit::{ImDocument, Item, TableLike, Value};

use crate::scenario::diagnostic::{Diagnostic, Diagnostics, SourceMap};
use crate::scenario::duration::parse_duration;

pub type Span = Option<Range<usize>>;

pub struct Reader<'a> {
    pub map: SourceMap<'a>,
    pub diagnostics: Vec<Diagnostic>,
}

/// What a TOML item is, in the words the error messages use.
pub fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) | Item::Value(Value::InlineTable(_)) => "a table",
        Item::ArrayOfTables(_) | Item::Value(Value::Array(_)) => "an array",
        Item::Value(Value::String(_)) => "a string",
        Item::Value(Value::Integer(_)) => "an integer",
        Item::Value(Value::Float(_)) => "a float",
        Item::Value(Value::Boolean(_)) => "a boolean",
        Item::Value(Value::Datetime(_)) => "a date-time",
    }
}

/// A file's text, or the one diagnostic saying why it cannot be read (`what`: "the scenario
/// file", "the inventory").
pub fn read_file(file: &Path, what: &str) -> Result<String, Diagnostics> {
    std::fs::read_to_string(file).map_err(|error| {
        let map = SourceMap::new(file, "");
        Diagnostics(vec![
            map.diagnostic(None, format!("cannot read {what}: {error}"))
        ])
    })
}

/// A TOML document, or its syntax error located in `map`'s file.
pub fn parse_toml<'t>(map: &SourceMap, text: &'t str) -> Result<ImDocument<&'t str>, Diagnostics> {
    ImDocument::parse(text).map_err(|error| {
        let message = error.message().trim().to_string();
        Diagnostics(vec![
            map.diagnostic(error.span(), format!("invalid TOML: {message}"))
        ])
    })
}

impl<'a> Reader<'a> {
    /// `value` when nothing was recorded, else every problem in the order of the file.
    pub fn finish<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.diagnostics.is_empty() {
            Ok(value)
        } else {
            let mut diagnostics = self.diagnostics;
            diagnostics.sort_by_key(|d| (d.line, d.column));
            Err(Diagnostics(diagnostics))
        }
    }

    pub fn new(map: SourceMap<'a>) -> Self {
        Self {
            map,
            diagnostics: Vec::new(),
        }
    }

    /// Records a problem; the same problem at the same place is recorded once, so a check
    /// that runs over a part again (templates of a step with other errors) adds nothing twice.
    pub fn error(&mut self, span: Span, message: impl Into<String>) {
        let diagnostic = self.map.diagnostic(span, message);
        if !self.diagnostics.contains(&diagnostic) {
            self.diagnostics.push(diagnostic);
        }
    }

    /// The span of a key, or of its value when the key has none (dotted or implicit keys).
    pub fn key_span(table: &dyn TableLike, key: &str) -> Span {
        table
            .get_key_value(key)
            .and_then(|(key, item)| key.span().or_else(|| item.span()))
    }

    /// Reports every key not in `allowed`.
    pub fn check_keys(&mut self, table: &dyn TableLike, allowed: &[&str], context: &str) {
        let unknown: Vec<String> = table
            .iter()
            .map(|(key, _)| key.to_string())
            .filter(|key| !allowed.contains(&key.as_str()))
            .collect();
        for key in unknown {
            let span = Self::key_span(table, &key);
            self.error(
                span,
                format!(
                    "unknown key `{key}` in {context}; expected one of: {}",
                    allowed.join(", ")
                ),
            );
        }
    }

    fn wrong_type(&mut self, item: &Item, key: &str, expected: &str) {
        let found = type_name(item);
        self.error(
            item.span(),
            format!("`{key}` must be {expected}, found {found}"),
        );
    }

    pub fn string(&mut self, table: &dyn TableLike, key: &str) -> Option<(String, Span)> {
        let item = table.get(key)?;
        match item.as_str() {
            Some(text) => Some((text.to_string(), item.span())),
            None => {
                self.wrong_type(item, key, "a string");
                None
            }
        }
    }

    pub fn required_string(
        &mut self,
        table: &dyn TableLike,
        table_span: Span,
        key: &str,
        context: &str,
    ) -> Option<(String, Span)> {
        if table.get(key).is_none() {
            self.error(
                table_span,
                format!("{context} has no `{key}`; add `{key} = \"...\"`"),
            );
            return None;
        }
        self.string(table, key)
    }

    pub fn bool(&mut self, table: &dyn TableLike, key: &str) -> Option<bool> {
        let item = table.get(key)?;
        match item.as_bool() {
            Some(value) => Some(value),
            None => {
                self.wrong_type(item, key, "true or false");
                None
            }
        }
    }

    pub fn integer(&mut self, table: &dyn TableLike, key: &str) -> Option<(i64, Span)> {
        let item = table.get(key)?;
        match item.as_integer() {
            Some(value) => Some((value, item.span())),
            None => {
                self.wrong_type(item, key, "an integer");
                None
            }
        }
    }

    pub fn duration(&mut self, table: &dyn TableLike, key: &str) -> Option<std::time::Duration> {
        let (text, span) = self.string(table, key)?;
        match parse_duration(&text) {
            Ok(duration) => Some(duration),
            Err(message) => {
                self.error(span, format!("`{key}`: {message}"));
                None
            }
        }
    }

    /// A string or an array of strings, each with its span.
    pub fn strings(&mut self, table: &dyn TableLike, key: &str) -> Option<Vec<(String, Span)>> {
        let item = table.get(key)?;
        if let Some(text) = item.as_str() {
            return Some(vec![(text.to_string(), item.span())]);
        }
        let Some(array) = item.as_array() else {
            self.wrong_type(item, key, "a string or an array of strings");
            return None;
        };
        let mut values = Vec::new();
        for value in array.iter() {
            match value.as_str() {
                Some(text) => values.push((text.to_string(), value.span())),
                None => self.error(
                    value.span(),
                    format!(
                        "`{key}` must hold only strings, found {}",
                        type_name(&Item::Value(value.clone()))
                    ),
                ),
            }
        }
        Some(values)
    }

    /// An array of strings only (an argv, a tag list).
    pub fn string_array(
        &mut self,
        table: &dyn TableLike,
        key: &str,
        expected: &str,
    ) -> Option<Vec<(String, Span)>> {
        let item = table.get(key)?;
        if item.as_array().is_none() {
            self.wrong_type(item, key, expected);
            return None;
        }
        self.strings(table, key)
    }

    pub fn table<'t>(
        &mut self,
        table: &'t dyn TableLike,
        key: &str,
    ) -> Option<(&'t dyn TableLike, Span)> {
        let item = table.get(key)?;
        match item.as_table_like() {
            Some(inner) => Some((inner, item.span().or_else(|| Self::key_span(table, key)))),
            None => {
                self.wrong_type(item, key, "a table");
                None
            }
        }
    }
}
