//! HTTP straight to the deployment's base URL (not through the target), with one cookie jar
//! shared by every request of a scenario. Redirects are not followed unless a step asks.

use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::Jar;
use reqwest::redirect::Policy;
use reqwest::{Client, Method};

use crate::scenario::HttpRequest;

/// A response, reduced to what expectations and captures read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

pub struct HttpClient {
    base_url: Option<String>,
    no_redirects: Client,
    redirects: Client,
}

impl HttpClient {
    pub fn new(base_url: Option<String>) -> anyhow::Result<Self> {
        let jar = Arc::new(Jar::default());
        let build = |policy: Policy| {
            Client::builder()
                .cookie_provider(jar.clone())
                .redirect(policy)
                .user_agent(concat!("bitpoll-harness/", env!("CARGO_PKG_VERSION")))
                .build()
        };
        Ok(Self {
            base_url: base_url.map(|url| url.trim_end_matches('/').to_string()),
            no_redirects: build(Policy::none())?,
            redirects: build(Policy::limited(10))?,
        })
    }

    /// The full URL of a request path: absolute URLs as they are, paths after the base URL.
    pub fn url(&self, path: &str) -> Result<String, String> {
        if path.starts_with("http://") || path.starts_with("https://") {
            return Ok(path.to_string());
        }
        match &self.base_url {
            Some(base) => Ok(format!("{base}{path}")),
            None => Err(format!(
                "`{path}` is relative but no base URL was given; pass --base-url"
            )),
        }
    }

    pub async fn send(&self, request: &HttpRequest, timeout: Duration) -> Result<Response, String> {
        let url = self.url(&request.path)?;
        let method = Method::from_bytes(request.method.as_bytes())
            .map_err(|_| format!("`{}` is not an HTTP method", request.method))?;
        let client = if request.follow_redirects {
            &self.redirects
        } else {
            &self.no_redirects
        };
        let mut builder = client.request(method, &url).timeout(timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if !request.form.is_empty() {
            builder = builder.form(&request.form);
        } else if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let response = builder
            .send()
            .await
            .map_err(|error| describe(&error, timeout))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .text()
            .await
            .map_err(|error| describe(&error, timeout))?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!(
            "no response within the step's timeout of {}",
            crate::scenario::duration::format_duration(timeout)
        );
    }
    // reqwest's top-level message omits the cause ("error sending request"); the chain has it.
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
