//! Captures: values taken from a step's result and defined as variables for later steps.

use regex::Regex;
use scraper::{Html, Selector};

use super::expect::without_final_newline;
use crate::scenario::{Capture, CaptureSource};
use crate::target::http::Response;
use crate::target::Output;

/// What a step produced that captures can read.
pub enum Source<'a> {
    Http(&'a Response),
    Command(&'a Output),
    Nothing,
}

pub fn capture(capture: &Capture, source: &Source) -> Result<String, String> {
    let name = &capture.name;
    let raw = match (&capture.source, source) {
        (CaptureSource::Css { selector, attr }, Source::Http(response)) => {
            let parsed = Selector::parse(selector)
                .map_err(|error| format!("capture `{name}`: invalid CSS selector: {error:?}"))?;
            let document = Html::parse_document(&response.body);
            let element = document
                .select(&parsed)
                .next()
                .ok_or_else(|| format!("capture `{name}`: no element matches `{selector}`"))?;
            match attr {
                Some(attr) => element.value().attr(attr).map(str::to_string).ok_or_else(|| {
                    format!("capture `{name}`: the element matching `{selector}` has no attribute `{attr}`")
                })?,
                None => element.text().collect::<String>().trim().to_string(),
            }
        }
        (CaptureSource::Header(header), Source::Http(response)) => response
            .header(header)
            .map(str::to_string)
            .ok_or_else(|| format!("capture `{name}`: the response has no header {header}"))?,
        (CaptureSource::Body, Source::Http(response)) => response.body.clone(),
        (CaptureSource::Stdout, Source::Command(output)) => {
            without_final_newline(&output.stdout_text()).to_string()
        }
        (CaptureSource::Stderr, Source::Command(output)) => {
            without_final_newline(&output.stderr_text()).to_string()
        }
        _ => {
            return Err(format!(
                "capture `{name}`: this step produced nothing to capture from"
            ))
        }
    };
    match &capture.regex {
        None => Ok(raw),
        Some(pattern) => {
            let regex = Regex::new(pattern)
                .map_err(|error| format!("capture `{name}`: invalid regex: {error}"))?;
            let found = regex
                .captures(&raw)
                .ok_or_else(|| format!("capture `{name}`: the regex {pattern:?} does not match"))?;
            let group = found
                .get(1)
                .or_else(|| found.get(0))
                .expect("a match has group 0");
            Ok(group.as_str().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: &str) -> Response {
        Response {
            status: 200,
            headers: vec![("Location".into(), "/poll/abc/edit/".into())],
            body: body.into(),
        }
    }

    #[test]
    fn captures_attributes_text_headers_and_regex_groups() {
        let page = response(
            r#"<form><input name="csrfmiddlewaretoken" value="tok"><h1> Title </h1></form>"#,
        );
        let css = |selector: &str, attr: Option<&str>| Capture {
            name: "x".into(),
            source: CaptureSource::Css {
                selector: selector.into(),
                attr: attr.map(Into::into),
            },
            regex: None,
            metric: false,
        };
        let source = Source::Http(&page);
        assert_eq!(
            capture(
                &css("input[name=csrfmiddlewaretoken]", Some("value")),
                &source
            )
            .unwrap(),
            "tok"
        );
        assert_eq!(capture(&css("h1", None), &source).unwrap(), "Title");
        assert!(capture(&css("table", None), &source)
            .unwrap_err()
            .contains("no element matches"));
        let header = Capture {
            name: "slug".into(),
            source: CaptureSource::Header("location".into()),
            regex: Some("/poll/([^/]+)/".into()),
            metric: false,
        };
        assert_eq!(capture(&header, &source).unwrap(), "abc");
    }
}
