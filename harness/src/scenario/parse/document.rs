//! The document's top level: `[scenario]`, `[vars]` and the `[[step]]` array, read in order,
//! each step through `step`.

use std::path::Path;

use toml_edit::{Item, TableLike};

use super::parser::Parser;
use super::step::parse_step;
use super::toml_reader::{parse_toml, read_file, type_name, Reader, Span};
use crate::scenario::diagnostic::{Diagnostics, SourceMap};
use crate::scenario::{template, Scenario, BUILTIN_VARS};

const TOP_KEYS: &[&str] = &["scenario", "vars", "step"];
const SCENARIO_KEYS: &[&str] = &["name", "summary", "tags", "timeout"];

/// Reads and parses a scenario file.
pub fn load(file: &Path) -> Result<Scenario, Diagnostics> {
    let text = read_file(file, "the scenario file")?;
    parse(file, &text)
}

/// Parses scenario text; `file` is only used to name the file in diagnostics.
pub fn parse(file: &Path, text: &str) -> Result<Scenario, Diagnostics> {
    let map = SourceMap::new(file, text);
    let document = parse_toml(&map, text)?;
    let mut parser = Parser::new(map, text);
    let scenario = parser.scenario(file, document.as_table());
    parser.reader.finish(scenario)
}

impl Parser<'_> {
    fn scenario(&mut self, file: &Path, root: &dyn TableLike) -> Scenario {
        self.reader.check_keys(root, TOP_KEYS, "the file");
        let mut scenario = Scenario {
            file: file.to_path_buf(),
            name: String::new(),
            summary: String::new(),
            tags: Vec::new(),
            timeout: None,
            vars: Vec::new(),
            steps: Vec::new(),
        };
        match self.reader.table(root, "scenario") {
            Some((header, span)) => self.header(header, span, &mut scenario),
            None if root.get("scenario").is_none() => self.reader.error(
                Some(0..0),
                "the file has no [scenario] table; add one with `name` and `summary`",
            ),
            None => {}
        }
        if let Some((vars, _)) = self.reader.table(root, "vars") {
            self.vars(vars, &mut scenario);
        }
        self.steps(root, &mut scenario);
        scenario
    }

    fn header(&mut self, header: &dyn TableLike, span: Span, scenario: &mut Scenario) {
        self.reader.check_keys(header, SCENARIO_KEYS, "[scenario]");
        let context = "[scenario]";
        if let Some((name, name_span)) =
            self.reader
                .required_string(header, span.clone(), "name", context)
        {
            if template::is_valid_name(&name) {
                scenario.name = name;
            } else {
                self.reader.error(
                    name_span,
                    format!("scenario name `{name}` must be letters, digits, `-` or `_`"),
                );
            }
        }
        if let Some((summary, _)) = self
            .reader
            .required_string(header, span, "summary", context)
        {
            scenario.summary = summary;
        }
        if let Some(tags) = self
            .reader
            .string_array(header, "tags", "an array of strings")
        {
            scenario.tags = tags.into_iter().map(|(tag, _)| tag).collect();
        }
        scenario.timeout = self.reader.duration(header, "timeout");
    }

    fn vars(&mut self, vars: &dyn TableLike, scenario: &mut Scenario) {
        for (name, item) in vars.iter() {
            let span = Reader::key_span(vars, name);
            if BUILTIN_VARS.contains(&name) {
                self.reader.error(
                    span,
                    format!("`{name}` is a built-in variable and cannot be set in [vars]; choose another name"),
                );
                continue;
            }
            if !template::is_valid_name(name) {
                self.reader.error(
                    span,
                    format!("variable name `{name}` must be letters, digits, `-` or `_`"),
                );
                continue;
            }
            match item.as_str() {
                Some(value) => {
                    scenario.vars.push((name.to_string(), value.to_string()));
                }
                None => self.reader.error(
                    item.span(),
                    format!(
                        "variable `{name}` must be a string, found {}; quote the value",
                        type_name(item)
                    ),
                ),
            }
        }
        // Vars may refer to built-ins and to each other only through the run's values, so they
        // are defined for every step once all of them are read.
        for (name, value) in &scenario.vars {
            for reference in template::references(value) {
                if !BUILTIN_VARS.contains(&reference) {
                    let span = Reader::key_span(vars, name);
                    self.reader.error(
                        span,
                        format!("variable `{name}` refers to `{{{{{reference}}}}}`; [vars] values may only use the built-ins: {}", BUILTIN_VARS.join(", ")),
                    );
                }
            }
            self.defined.insert(name.clone());
        }
    }

    fn steps(&mut self, root: &dyn TableLike, scenario: &mut Scenario) {
        let Some(item) = root.get("step") else {
            self.reader.error(
                Some(0..0),
                "the scenario has no steps; add at least one [[step]] table",
            );
            return;
        };
        let Item::ArrayOfTables(steps) = item else {
            self.reader.error(
                item.span(),
                format!(
                    "`step` must be an array of tables written as [[step]], found {}",
                    type_name(item)
                ),
            );
            return;
        };
        let mut first_use: Vec<(String, usize)> = Vec::new();
        for table in steps.iter() {
            let span = table.span();
            // Duplicate names are found from the raw table, so a step with other problems
            // still has its name checked.
            if let Some(name_item) = table.get("name").filter(|item| item.is_str()) {
                let name = name_item.as_str().unwrap_or_default().to_string();
                let line = self
                    .reader
                    .map
                    .position(span.clone().map_or(0, |s| s.start))
                    .0;
                if let Some((_, first_line)) = first_use.iter().find(|(used, _)| *used == name) {
                    self.reader.error(
                        name_item.span(),
                        format!("duplicate step name `{name}`, first used at line {first_line}; step names must be unique"),
                    );
                } else {
                    first_use.push((name, line));
                }
            }
            let Some(step) = parse_step(self, table, span) else {
                // A step with other errors may not have read the parts that hold templates
                // (an action beside another, expectations of an unknown kind): their
                // references are checked all the same, so one run of `check` shows them.
                self.check_templates_in(table);
                continue;
            };
            for capture in &step.captures {
                self.defined.insert(capture.name.clone());
            }
            scenario.steps.push(step);
        }
    }
}
