//! The http action against a real server on 127.0.0.1: a CSRF token captured from a form and
//! posted back, a redirect asserted without being followed, cookies kept across steps.

#[path = "support/http_server.rs"]
mod http_server;
#[path = "support/scenario_dir.rs"]
mod scenario_dir;

use predicates::prelude::*;
use scenario_dir::{run_local, ScenarioDir};

const FORM_FLOW: &str = r#"
[scenario]
name = "form-flow"
summary = "a django-like form flow"

[[step]]
name = "form page"
http = "/form"
expect.status = 200
capture.csrf = { css = "input[name=csrfmiddlewaretoken]", attr = "value" }

[[step]]
name = "post the form"
http = { method = "POST", path = "/submit", form = { csrfmiddlewaretoken = "{{csrf}}", title = "p{{run_id}}" } }
expect.status = 302
expect.headers.Location = { regex = "^/poll/pr[0-9a-f]+/$" }
capture.poll_path = { header = "Location" }

[[step]]
name = "the session cookie is kept"
http = "{{poll_path}}"
expect.status = 200
expect.body.contains = "<h1>/poll/p"
"#;

#[test]
fn a_csrf_token_is_captured_posted_back_and_the_redirect_is_not_followed() {
    let server = http_server::start();
    let dir = ScenarioDir::new();
    let file = dir.write("flow.toml", FORM_FLOW);
    let report = dir.path("report.json");
    run_local(&file, Some(&server.base_url))
        .args(["--report", report.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("  PASS  post the form"))
        .stdout(predicate::str::ends_with("3 passed, 0 failed, 0 skipped\n"));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    assert_eq!(json["summary"]["passed"], 3);
}

#[test]
fn a_post_without_the_token_is_refused_by_the_server() {
    // Proves the flow above passes because of the captured token, not by accident.
    let server = http_server::start();
    let dir = ScenarioDir::new();
    let file = dir.write(
        "no-token.toml",
        r#"
[scenario]
name = "no-token"
summary = "posting without the csrf token"

[[step]]
name = "form page"
http = "/form"

[[step]]
name = "post without token"
http = { method = "POST", path = "/submit", form = { title = "x" } }
expect.status = 302
"#,
    );
    run_local(&file, Some(&server.base_url))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("status 403, expected 302"))
        .stdout(predicate::str::contains("POST http://127.0.0.1:"))
        .stdout(predicate::str::contains("CSRF verification failed"));
}

#[test]
fn follow_redirects_reaches_the_final_page() {
    let server = http_server::start();
    let dir = ScenarioDir::new();
    let file = dir.write(
        "follow.toml",
        r#"
[scenario]
name = "follow"
summary = "following a redirect when asked"

[[step]]
name = "form page"
http = "/form"
capture.csrf = { css = "input[name=csrfmiddlewaretoken]", attr = "value" }

[[step]]
name = "post and follow"
http = { method = "POST", path = "/submit", form = { csrfmiddlewaretoken = "{{csrf}}", title = "followed" }, follow_redirects = true }
expect.status = 200
expect.body.equals = "<h1>/poll/followed/</h1>"
"#,
    );
    run_local(&file, Some(&server.base_url)).assert().success();
}

#[test]
fn a_capture_that_finds_nothing_fails_its_step_and_skips_the_rest() {
    let server = http_server::start();
    let dir = ScenarioDir::new();
    let file = dir.write(
        "missing.toml",
        r#"
[scenario]
name = "missing-capture"
summary = "a selector that matches nothing"

[[step]]
name = "form page"
http = "/form"
capture.token = { css = "input[name=nothing]", attr = "value" }

[[step]]
name = "uses the token"
http = "/poll/{{token}}/"
"#,
    );
    run_local(&file, Some(&server.base_url))
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "capture `token`: no element matches `input[name=nothing]`",
        ))
        .stdout(predicate::str::contains("SKIP  uses the token"))
        .stdout(predicate::str::ends_with("0 passed, 1 failed, 1 skipped\n"));
}

#[test]
fn repeat_requires_every_attempt_to_pass() {
    let server = http_server::start();
    let dir = ScenarioDir::new();
    let steady = dir.write(
        "steady.toml",
        r#"
[scenario]
name = "steady"
summary = "a page that always answers"

[[step]]
name = "always up"
http = "/form"
expect.status = 200
repeat = { count = 25, interval = "10ms" }
"#,
    );
    run_local(&steady, Some(&server.base_url))
        .assert()
        .success();

    // /flaky answers 503 twice before it is ready: a repeated check catches the first refusal.
    let flaky = dir.write(
        "flaky.toml",
        r#"
[scenario]
name = "flaky"
summary = "a page that refuses the first requests"

[[step]]
name = "never refused"
http = "/flaky"
expect.status = 200
repeat = { count = 5 }
"#,
    );
    run_local(&flaky, Some(&server.base_url))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL  never refused"))
        .stdout(predicate::str::contains(
            "attempt 1 of 5: status 503, expected 200",
        ));
}
