//! `{{name}}` templating. An unknown name is an error, never an empty string.

use std::collections::BTreeMap;

/// The names of the variables a template refers to, in order of appearance.
pub fn references(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        names.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    names
}

/// Whether a name is acceptable as a variable name (letters, digits, `_`, `-`).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Substitutes every `{{name}}`; the error names the first unknown variable.
pub fn render(template: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut output = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        output.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            output.push_str(&rest[start..]);
            return Ok(output);
        };
        let name = after[..end].trim();
        let value = vars
            .get(name)
            .ok_or_else(|| format!("variable `{name}` is not defined"))?;
        output.push_str(value);
        rest = &after[end + 2..];
    }
    output.push_str(rest);
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_renders_references() {
        let vars = BTreeMap::from([("slug".to_string(), "p1".to_string())]);
        assert_eq!(references("/poll/{{ slug }}/{{x}}"), vec!["slug", "x"]);
        assert_eq!(render("/poll/{{ slug }}/", &vars).unwrap(), "/poll/p1/");
        assert_eq!(
            render("{{nope}}", &vars).unwrap_err(),
            "variable `nope` is not defined"
        );
        assert_eq!(render("no braces {", &vars).unwrap(), "no braces {");
    }
}
