//! Timeouts and retries: a command or request that hangs fails its step within its timeout;
//! `retry` passes once the condition becomes true.

#[path = "support/http_server.rs"]
mod http_server;
#[path = "support/scenario_dir.rs"]
mod scenario_dir;

use std::time::{Duration, Instant};

use predicates::prelude::*;
use scenario_dir::{run_local, ScenarioDir};

#[test]
fn a_hanging_command_fails_within_its_timeout() {
    let dir = ScenarioDir::new();
    let file = dir.write(
        "hang.toml",
        r#"
[scenario]
name = "hang"
summary = "a command that never ends"

[[step]]
name = "sleeps"
sh = "sleep 60"
timeout = "1s"
"#,
    );
    let started = Instant::now();
    run_local(&file, None)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "did not finish within its timeout of 1.00s",
        ));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_hanging_request_fails_within_its_timeout() {
    let server = http_server::start();
    let dir = ScenarioDir::new();
    let file = dir.write(
        "hang-http.toml",
        r#"
[scenario]
name = "hang-http"
summary = "a response that never comes"

[[step]]
name = "waits"
http = "/hang"
timeout = "1s"
"#,
    );
    let started = Instant::now();
    run_local(&file, Some(&server.base_url))
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "no response within the step's timeout of 1.00s",
        ));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn retry_passes_once_the_service_is_ready() {
    let server = http_server::start();
    let dir = ScenarioDir::new();
    let file = dir.write(
        "retry-http.toml",
        r#"
[scenario]
name = "retry-http"
summary = "a service that answers 503 twice"

[[step]]
name = "ready"
http = "/flaky"
expect.status = 200
expect.body.equals = "ready"
retry = { timeout = "10s", interval = "100ms" }
"#,
    );
    run_local(&file, Some(&server.base_url)).assert().success();
}

#[test]
fn retry_passes_once_a_file_appears_and_fails_when_it_never_does() {
    let dir = ScenarioDir::new();
    let marker = dir.path("ready");
    let appears = dir.write(
        "appears.toml",
        &format!(
            r#"
[scenario]
name = "appears"
summary = "waiting for a file that a background process creates"

[[step]]
name = "start the writer"
sh = "(sleep 1; touch {marker}) >/dev/null 2>&1 &"

[[step]]
name = "file exists"
file = "{marker}"
retry = {{ timeout = "10s", interval = "200ms" }}
"#,
            marker = marker.display()
        ),
    );
    run_local(&appears, None).assert().success();

    let never = dir.write(
        "never.toml",
        r#"
[scenario]
name = "never"
summary = "waiting for a file that never comes"

[[step]]
name = "file exists"
file = "/nonexistent/never"
retry = { timeout = "1s", interval = "200ms" }
"#,
    );
    let started = Instant::now();
    run_local(&never, None)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "the file does not exist (still failing after",
        ));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_scenario_timeout_stops_the_remaining_steps() {
    let dir = ScenarioDir::new();
    let file = dir.write(
        "budget.toml",
        r#"
[scenario]
name = "budget"
summary = "a scenario over its time budget"
timeout = "1s"

[[step]]
name = "slow"
sh = "sleep 5"

[[step]]
name = "after the budget"
run = ["true"]

[[step]]
name = "cleanup"
always = true
run = ["true"]
"#,
    );
    run_local(&file, None)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL  slow"))
        .stdout(predicate::str::contains("PASS  cleanup"))
        .stdout(predicate::str::contains(
            "did not finish within its timeout",
        ))
        .stdout(predicate::str::contains("SKIP  after the budget"));
}
