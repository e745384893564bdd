//! Fills a step's templates with the run's variables just before the step runs.

use std::collections::BTreeMap;

use crate::scenario::template::render;
use crate::scenario::{Action, Capture, CaptureSource, Expect, HttpRequest, Step, TextMatch};

type Vars = BTreeMap<String, String>;

pub fn render_step(step: &Step, vars: &Vars) -> Result<Step, String> {
    let r = |text: &String| render(text, vars);
    let action = match &step.action {
        Action::Run { argv, stdin } => Action::Run {
            argv: argv.iter().map(r).collect::<Result<_, _>>()?,
            stdin: stdin.as_ref().map(r).transpose()?,
        },
        Action::Sh { script, stdin } => Action::Sh {
            script: r(script)?,
            stdin: stdin.as_ref().map(r).transpose()?,
        },
        Action::Http(request) => Action::Http(HttpRequest {
            method: request.method.clone(),
            path: r(&request.path)?,
            headers: render_pairs(&request.headers, vars)?,
            form: render_pairs(&request.form, vars)?,
            body: request.body.as_ref().map(r).transpose()?,
            follow_redirects: request.follow_redirects,
        }),
        Action::File { path } => Action::File { path: r(path)? },
        Action::Unit { name } => Action::Unit { name: r(name)? },
        Action::WaitForUnit { name } => Action::WaitForUnit { name: r(name)? },
    };
    Ok(Step {
        action,
        expect: render_expect(&step.expect, vars)?,
        captures: step
            .captures
            .iter()
            .map(|capture| render_capture(capture, vars))
            .collect::<Result<_, _>>()?,
        ..step.clone()
    })
}

fn render_pairs(pairs: &[(String, String)], vars: &Vars) -> Result<Vec<(String, String)>, String> {
    pairs
        .iter()
        .map(|(name, value)| Ok((render(name, vars)?, render(value, vars)?)))
        .collect()
}

fn render_match(matches: &TextMatch, vars: &Vars) -> Result<TextMatch, String> {
    let all = |items: &Vec<String>| -> Result<Vec<String>, String> {
        items.iter().map(|item| render(item, vars)).collect()
    };
    Ok(TextMatch {
        equals: matches
            .equals
            .as_ref()
            .map(|text| render(text, vars))
            .transpose()?,
        contains: all(&matches.contains)?,
        not_contains: all(&matches.not_contains)?,
        regex: all(&matches.regex)?,
    })
}

fn render_optional(matches: &Option<TextMatch>, vars: &Vars) -> Result<Option<TextMatch>, String> {
    matches.as_ref().map(|m| render_match(m, vars)).transpose()
}

fn render_expect(expect: &Expect, vars: &Vars) -> Result<Expect, String> {
    let text = |value: &Option<String>| value.as_ref().map(|v| render(v, vars)).transpose();
    let mut headers = Vec::new();
    for header in &expect.headers {
        headers.push(crate::scenario::HeaderExpect {
            name: header.name.clone(),
            matches: render_optional(&header.matches, vars)?,
        });
    }
    let mut properties = Vec::new();
    for (name, matches) in &expect.properties {
        properties.push((name.clone(), render_match(matches, vars)?));
    }
    Ok(Expect {
        stdout: render_optional(&expect.stdout, vars)?,
        stderr: render_optional(&expect.stderr, vars)?,
        headers,
        body: render_optional(&expect.body, vars)?,
        owner: text(&expect.owner)?,
        group: text(&expect.group)?,
        content: render_optional(&expect.content, vars)?,
        active: text(&expect.active)?,
        enabled: text(&expect.enabled)?,
        properties,
        ..expect.clone()
    })
}

fn render_capture(capture: &Capture, vars: &Vars) -> Result<Capture, String> {
    let source = match &capture.source {
        CaptureSource::Css { selector, attr } => CaptureSource::Css {
            selector: render(selector, vars)?,
            attr: attr.clone(),
        },
        other => other.clone(),
    };
    Ok(Capture {
        source,
        name: capture.name.clone(),
        metric: capture.metric,
        regex: capture
            .regex
            .as_ref()
            .map(|pattern| render(pattern, vars))
            .transpose()?,
    })
}
