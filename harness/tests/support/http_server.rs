//! A small HTTP/1.1 server on 127.0.0.1 that behaves like a Django form flow: a form page that
//! sets a CSRF cookie and embeds the same token, a POST that checks both and redirects, a page
//! that needs the session cookie, a response that never comes, and one that fails until the
//! third request.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

pub struct TestServer {
    pub base_url: String,
}

pub fn start() -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().unwrap().port();
    let token = format!("tok{}x{port}", std::process::id());
    let flaky_calls = Arc::new(AtomicUsize::new(0));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let token = token.clone();
            let flaky_calls = Arc::clone(&flaky_calls);
            thread::spawn(move || handle(stream, &token, &flaky_calls));
        }
    });
    TestServer {
        base_url: format!("http://127.0.0.1:{port}"),
    }
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn form_fields(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_string(), value.replace('+', " ")))
        .collect()
}

fn cookie(request: &Request, name: &str) -> Option<String> {
    request.headers.get("cookie")?.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then(|| value.to_string())
    })
}

fn respond(mut stream: TcpStream, status: &str, headers: &[(&str, String)], body: &str) {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(body);
    let _ = stream.write_all(response.as_bytes());
}

fn handle(stream: TcpStream, token: &str, flaky_calls: &AtomicUsize) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    let html = [("Content-Type", "text/html; charset=utf-8".to_string())];
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/form") => respond(
            stream,
            "200 OK",
            &[
                ("Content-Type", "text/html; charset=utf-8".to_string()),
                ("Set-Cookie", format!("csrftoken={token}; Path=/")),
            ],
            &format!(
                "<html><body><h1>New poll</h1><form method=post action=/submit>\
                 <input type=hidden name=csrfmiddlewaretoken value=\"{token}\">\
                 <input name=title></form></body></html>"
            ),
        ),
        ("POST", "/submit") => {
            let fields = form_fields(&request.body);
            let posted = fields.get("csrfmiddlewaretoken").map(String::as_str);
            let cookie_token = cookie(&request, "csrftoken");
            if posted == Some(token) && cookie_token.as_deref() == Some(token) {
                let title = fields.get("title").cloned().unwrap_or_default();
                respond(
                    stream,
                    "302 Found",
                    &[
                        ("Location", format!("/poll/{title}/")),
                        (
                            "Set-Cookie",
                            "sessionid=s3cret; Path=/; HttpOnly".to_string(),
                        ),
                    ],
                    "",
                );
            } else {
                respond(stream, "403 Forbidden", &html, "CSRF verification failed");
            }
        }
        ("GET", path) if path.starts_with("/poll/") => {
            if cookie(&request, "sessionid").as_deref() == Some("s3cret") {
                respond(stream, "200 OK", &html, &format!("<h1>{path}</h1>"));
            } else {
                respond(stream, "403 Forbidden", &html, "no session");
            }
        }
        ("GET", "/hang") => {
            thread::sleep(Duration::from_secs(30));
            respond(stream, "200 OK", &html, "too late");
        }
        ("GET", "/flaky") => {
            if flaky_calls.fetch_add(1, Ordering::SeqCst) < 2 {
                respond(stream, "503 Service Unavailable", &html, "starting");
            } else {
                respond(stream, "200 OK", &html, "ready");
            }
        }
        _ => respond(stream, "404 Not Found", &html, "not found"),
    }
}
