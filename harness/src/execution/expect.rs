//! Checks observations against a step's expectations. Each function returns every failed
//! expectation as a sentence, so a report shows all of them at once.

use regex::Regex;

use crate::scenario::{Expect, TextMatch};
use crate::target::http::Response;
use crate::target::Output;

/// Checks one text; `label` names it in the messages (`stdout`, `body`, `header Location`).
pub fn check_text(label: &str, text: &str, matches: &TextMatch) -> Vec<String> {
    let mut failures = Vec::new();
    if let Some(expected) = &matches.equals {
        if text.trim_end_matches('\n') != expected.trim_end_matches('\n') {
            failures.push(format!(
                "{label} is {:?}, expected {:?}",
                excerpt(text, 200),
                expected
            ));
        }
    }
    for needle in &matches.contains {
        if !text.contains(needle.as_str()) {
            failures.push(format!("{label} does not contain {needle:?}"));
        }
    }
    for needle in &matches.not_contains {
        if text.contains(needle.as_str()) {
            failures.push(format!("{label} contains {needle:?}, which it must not"));
        }
    }
    let subject = without_final_newline(text);
    for pattern in &matches.regex {
        match Regex::new(pattern) {
            Ok(regex) if regex.is_match(subject) => {}
            Ok(_) => failures.push(format!("{label} does not match the regex {pattern:?}")),
            Err(error) => failures.push(format!("invalid regex {pattern:?}: {error}")),
        }
    }
    failures
}

/// Text without its final line break, so that `$` ends a one-line output as it does in most
/// regex dialects and a captured line carries no newline.
pub fn without_final_newline(text: &str) -> &str {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.strip_suffix('\r').unwrap_or(text)
}

pub fn check_command(expect: &Expect, output: &Output, timeout_text: &str) -> Vec<String> {
    if output.timed_out {
        return vec![format!(
            "the command did not finish within its timeout of {timeout_text}"
        )];
    }
    let mut failures = Vec::new();
    let expected = expect.exit.unwrap_or(0);
    match output.exit_code {
        Some(code) if code == expected => {}
        Some(code) => failures.push(format!("exit code {code}, expected {expected}")),
        None => failures.push(format!("killed by a signal, expected exit code {expected}")),
    }
    if let Some(matches) = &expect.stdout {
        failures.extend(check_text("stdout", &output.stdout_text(), matches));
    }
    if let Some(matches) = &expect.stderr {
        failures.extend(check_text("stderr", &output.stderr_text(), matches));
    }
    failures
}

pub fn check_http(expect: &Expect, response: &Response) -> Vec<String> {
    let mut failures = Vec::new();
    if expect.status.is_empty() {
        // Without an explicit status, anything but an error is acceptable.
        if response.status >= 400 {
            failures.push(format!(
                "status {}, expected a success or redirect (set expect.status to accept it)",
                response.status
            ));
        }
    } else if !expect.status.contains(&response.status) {
        let expected: Vec<String> = expect.status.iter().map(u16::to_string).collect();
        failures.push(format!(
            "status {}, expected {}",
            response.status,
            expected.join(" or ")
        ));
    }
    for header in &expect.headers {
        match (response.header(&header.name), &header.matches) {
            (None, None) => {}
            (Some(value), None) => failures.push(format!(
                "header {} is present ({value:?}), expected it absent",
                header.name
            )),
            (None, Some(_)) => failures.push(format!("header {} is missing", header.name)),
            (Some(value), Some(matches)) => {
                failures.extend(check_text(
                    &format!("header {}", header.name),
                    value,
                    matches,
                ));
            }
        }
    }
    if let Some(matches) = &expect.body {
        failures.extend(check_text("body", &response.body, matches));
    }
    failures
}

/// What `stat` tells of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    pub file_type: String,
    pub mode: String,
    pub owner: String,
    pub group: String,
}

pub fn check_file(expect: &Expect, stat: Option<&FileStat>, content: Option<&str>) -> Vec<String> {
    let should_exist = expect.exists.unwrap_or(true);
    let Some(stat) = stat else {
        return if should_exist {
            vec!["the file does not exist".into()]
        } else {
            Vec::new()
        };
    };
    if !should_exist {
        return vec![format!("the {} exists, expected it absent", stat.file_type)];
    }
    let mut failures = Vec::new();
    let pairs = [
        ("type", &expect.file_type, &stat.file_type),
        ("mode", &expect.mode, &stat.mode),
        ("owner", &expect.owner, &stat.owner),
        ("group", &expect.group, &stat.group),
    ];
    for (label, expected, actual) in pairs {
        if let Some(expected) = expected {
            if expected != actual {
                failures.push(format!("{label} is {actual}, expected {expected}"));
            }
        }
    }
    if let (Some(matches), Some(content)) = (&expect.content, content) {
        failures.extend(check_text("content", content, matches));
    }
    failures
}

/// `systemctl show` properties against `active`, `enabled` and `properties`.
pub fn check_unit(
    expect: &Expect,
    properties: &[(String, String)],
    default_active: bool,
) -> Vec<String> {
    let get = |name: &str| {
        properties
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let mut failures = Vec::new();
    if get("LoadState") == Some("not-found") {
        return vec!["the unit does not exist (LoadState=not-found)".into()];
    }
    let active = expect
        .active
        .clone()
        .or_else(|| default_active.then(|| "active".to_string()));
    if let Some(expected) = active {
        let actual = get("ActiveState").unwrap_or("");
        if actual != expected {
            failures.push(format!("ActiveState is {actual}, expected {expected}"));
        }
    }
    if let Some(expected) = &expect.enabled {
        let actual = get("UnitFileState").unwrap_or("");
        if actual != expected {
            failures.push(format!("UnitFileState is {actual}, expected {expected}"));
        }
    }
    for (name, matches) in &expect.properties {
        match get(name) {
            Some(value) => failures.extend(check_text(name, value, matches)),
            None => failures.push(format!("property {name} is not reported by systemctl show")),
        }
    }
    failures
}

/// The end of a text, bounded in lines and characters: what reports show of an output.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    const MAX_LINES: usize = 20;
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(MAX_LINES);
    let mut tail = lines[start..].join("\n");
    if tail.chars().count() > max_chars {
        let skip = tail.chars().count() - max_chars;
        tail = format!("…{}", tail.chars().skip(skip).collect::<String>());
    } else if start > 0 {
        tail = format!("… ({start} earlier lines)\n{tail}");
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_matches_report_each_failure() {
        let matches = TextMatch {
            equals: None,
            contains: vec!["poll".into(), "absent".into()],
            not_contains: vec!["Traceback".into()],
            regex: vec![r"^\d+ votes$".into()],
        };
        let failures = check_text("body", "poll\nTraceback", &matches);
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert!(failures[0].contains("does not contain \"absent\""));
        assert!(failures[1].contains("contains \"Traceback\""));
    }

    #[test]
    fn regexes_ignore_the_final_newline() {
        let matches = TextMatch {
            regex: vec!["^bitpoll 997$".into()],
            ..TextMatch::default()
        };
        assert!(check_text("stdout", "bitpoll 997\n", &matches).is_empty());
        assert_eq!(check_text("stdout", "bitpoll 997\n\n", &matches).len(), 1);
    }

    #[test]
    fn exit_code_defaults_to_zero() {
        let output = Output {
            exit_code: Some(1),
            ..Output::default()
        };
        assert_eq!(
            check_command(&Expect::default(), &output, "1s"),
            vec!["exit code 1, expected 0"]
        );
    }

    #[test]
    fn excerpts_are_bounded() {
        let long = (0..100)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let short = excerpt(&long, 10_000);
        assert!(short.starts_with("… (80 earlier lines)"));
        assert!(short.ends_with("line 99"));
        assert!(excerpt(&"x".repeat(5000), 100).chars().count() <= 101);
    }
}
