//! Scenario parsing: valid files, and every kind of bad input with its exact FILE:LINE:COL.

use std::path::Path;

use bitpoll_harness::scenario::parse::parse;
use bitpoll_harness::scenario::{Action, CaptureSource};

/// The diagnostics of a text, one `FILE:LINE:COL: message` string each.
fn problems(text: &str) -> Vec<String> {
    match parse(Path::new("s.toml"), text) {
        Ok(_) => Vec::new(),
        Err(diagnostics) => diagnostics.0.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts exactly one problem, at `position`, whose message contains `fragment`.
fn assert_one(text: &str, position: &str, fragment: &str) {
    let found = problems(text);
    assert_eq!(found.len(), 1, "expected one problem, got {found:#?}");
    let prefix = format!("s.toml:{position}: ");
    assert!(
        found[0].starts_with(&prefix),
        "expected {prefix}..., got {}",
        found[0]
    );
    assert!(
        found[0].contains(fragment),
        "expected {fragment:?} in {}",
        found[0]
    );
}

const HEADER: &str = "[scenario]\nname = \"t\"\nsummary = \"s\"\n";

#[test]
fn a_complete_scenario_parses_into_its_model() {
    let text = format!(
        r#"{HEADER}tags = ["smoke"]
timeout = "5m"

[vars]
slug = "poll-{{{{run_id}}}}"

[[step]]
name = "form"
http = "/"
capture.csrf = {{ css = "input[name=csrfmiddlewaretoken]", attr = "value" }}

[[step]]
name = "create"
http = {{ method = "post", path = "/", form = {{ title = "T", choice_text = ["a", "b"], csrfmiddlewaretoken = "{{{{csrf}}}}" }} }}
expect = {{ status = [302, 303], headers.Location = {{ regex = "^/poll/" }} }}

[[step]]
name = "state"
file = "/var/lib/bitpoll/secrets/secret_key"
expect = {{ mode = "600", owner = "bitpoll" }}

[[step]]
name = "unit"
unit = "bitpoll.service"
expect.properties.User = "bitpoll"
retry = {{ timeout = "10s" }}

[[step]]
name = "count"
sh = "echo 3"
stdin = "x"
requires = ["root"]
always = true
timeout = "500ms"
capture.n = {{ regex = "(\\d+)" }}
"#
    );
    let scenario = parse(Path::new("s.toml"), &text).expect("valid");
    assert_eq!(scenario.tags, vec!["smoke"]);
    assert_eq!(scenario.timeout, Some(std::time::Duration::from_secs(300)));
    assert_eq!(scenario.steps.len(), 5);
    let Action::Http(create) = &scenario.steps[1].action else {
        panic!("http")
    };
    assert_eq!(create.method, "POST");
    assert_eq!(
        create.form,
        vec![
            ("title".into(), "T".into()),
            ("choice_text".into(), "a".into()),
            ("choice_text".into(), "b".into()),
            ("csrfmiddlewaretoken".into(), "{{csrf}}".into())
        ]
    );
    assert_eq!(scenario.steps[1].expect.status, vec![302, 303]);
    assert_eq!(scenario.steps[2].expect.mode.as_deref(), Some("0600"));
    assert!(matches!(
        scenario.steps[0].captures[0].source,
        CaptureSource::Css { .. }
    ));
    assert!(matches!(
        scenario.steps[4].captures[0].source,
        CaptureSource::Stdout
    ));
    assert_eq!(scenario.steps[3].line, 25);
    assert!(scenario.steps[4].always);
}

#[test]
fn invalid_toml_is_located() {
    assert_one(
        &format!("{HEADER}[[step]]\nname = \"a\nrun = [\"x\"]\n"),
        "5:10",
        "invalid TOML",
    );
}

#[test]
fn unknown_keys_are_located_at_the_key() {
    assert_one(
        &format!("{HEADER}owner = \"me\"\n[[step]]\nname = \"a\"\nrun = [\"true\"]\n"),
        "4:1",
        "unknown key `owner` in [scenario]; expected one of: name, summary, tags, timeout",
    );
    assert_one(
        &format!("{HEADER}[[step]]\nname = \"a\"\nrun = [\"true\"]\nexpct = {{}}\n"),
        "7:1",
        "unknown key `expct` in [[step]]",
    );
    assert_one(
        &format!("{HEADER}[[step]]\nname = \"a\"\nrun = [\"true\"]\nexpect = {{ status = 200 }}\n"),
        "7:12",
        "unknown key `status` in `expect` of a `run` step; expected one of: exit, stdout, stderr",
    );
    assert_one(
        &format!("{HEADER}[[step]]\nname = \"a\"\nhttp = {{ path = \"/\", verb = \"GET\" }}\n"),
        "6:22",
        "unknown key `verb` in `http`",
    );
}

#[test]
fn wrong_types_name_what_is_expected() {
    assert_one(&format!("{HEADER}[[step]]\nname = \"a\"\nrun = \"echo hi\"\n"), "6:7", "`run` must be an array of strings (the argv; use `sh` for a shell command line), found a string");
    assert_one(
        &format!("{HEADER}[[step]]\nname = \"a\"\nrun = [\"true\"]\nexpect.exit = \"0\"\n"),
        "7:15",
        "`exit` must be an integer, found a string",
    );
    assert_one(
        &format!("{HEADER}[[step]]\nname = \"a\"\nrun = [\"true\"]\nalways = 1\n"),
        "7:10",
        "`always` must be true or false, found an integer",
    );
    assert_one(
        &format!("{HEADER}[vars]\nport = 8080\n[[step]]\nname = \"a\"\nrun = [\"true\"]\n"),
        "5:8",
        "variable `port` must be a string, found an integer; quote the value",
    );
    assert_one(
        &format!("{HEADER}[[step]]\nname = \"a\"\nrun = [\"true\"]\ntimeout = \"30\"\n"),
        "7:11",
        "has no unit",
    );
    assert_one(
        &format!("{HEADER}[[step]]\nname = \"a\"\nhttp = \"/\"\nexpect.status = 700\n"),
        "7:17",
        "`status` must be an HTTP status code",
    );
}

#[test]
fn a_step_needs_exactly_one_action() {
    assert_one(&format!("{HEADER}[[step]]\nname = \"none\"\n"), "4:1", "step `none` has no action; expected exactly one of: run, sh, http, file, unit, wait_for_unit");
    assert_one(
        &format!("{HEADER}[[step]]\nname = \"two\"\nrun = [\"true\"]\nsh = \"true\"\n"),
        "7:1",
        "step `two` has two actions, `run` and `sh`",
    );
}

#[test]
fn an_undefined_variable_is_reported_in_a_step_with_another_error() {
    // Two actions: neither is read as the step's action, but its references are still checked.
    let text = format!(
        "{HEADER}[[step]]\nname = \"two\"\nrun = [\"echo\", \"{{{{nope}}}}\"]\nsh = \"echo {{{{other}}}}\"\n"
    );
    let found = problems(&text);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        found[0].starts_with("s.toml:6:17: `{{nope}}` is not defined here"),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with("s.toml:7:1: step `two` has two actions"),
        "{found:#?}"
    );
    assert!(
        found[2].starts_with("s.toml:7:12: `{{other}}` is not defined here"),
        "{found:#?}"
    );
}

#[test]
fn duplicate_step_names_point_at_the_second() {
    assert_one(
        &format!("{HEADER}[[step]]\nname = \"a\"\nrun = [\"true\"]\n\n[[step]]\nname = \"a\"\nrun = [\"true\"]\n"),
        "9:8",
        "duplicate step name `a`, first used at line 4; step names must be unique",
    );
}

#[test]
fn undefined_variables_point_at_the_reference() {
    assert_one(
        &format!("{HEADER}[[step]]\nname = \"a\"\nrun = [\"echo\", \"x {{{{ nope }}}}\"]\n"),
        "6:19",
        "`{{nope}}` is not defined here; define it in [vars] or capture it in an earlier step",
    );
    // A capture is defined only for the steps after it.
    let text = format!("{HEADER}[[step]]\nname = \"a\"\nrun = [\"echo\", \"{{{{n}}}}\"]\ncapture.n = {{ regex = \"x\" }}\n");
    assert_one(&text, "6:17", "`{{n}}` is not defined here");
    let later = format!("{HEADER}[[step]]\nname = \"a\"\nrun = [\"echo\", \"1\"]\ncapture.n = {{ regex = \"\\\\d\" }}\n[[step]]\nname = \"b\"\nsh = \"echo {{{{n}}}} {{{{run_id}}}}\"\n");
    assert_eq!(problems(&later), Vec::<String>::new());
}

#[test]
fn builtins_cannot_be_redefined_and_captures_need_a_fitting_source() {
    assert_one(
        &format!("{HEADER}[vars]\nrun_id = \"x\"\n[[step]]\nname = \"a\"\nrun = [\"true\"]\n"),
        "5:1",
        "`run_id` is a built-in variable",
    );
    assert_one(
        &format!(
            "{HEADER}[[step]]\nname = \"a\"\nrun = [\"true\"]\ncapture.t = {{ css = \"input\" }}\n"
        ),
        "7:21",
        "`css` reads an HTML response and only goes with `http` steps",
    );
    assert_one(
        &format!(
            "{HEADER}[[step]]\nname = \"a\"\nhttp = \"/\"\ncapture.t = {{ css = \"input[\" }}\n"
        ),
        "7:21",
        "invalid CSS selector",
    );
    assert_one(
        &format!(
            "{HEADER}[[step]]\nname = \"a\"\nrun = [\"true\"]\ncapture.t = {{ regex = \"(\" }}\n"
        ),
        "7:23",
        "invalid regex",
    );
}

#[test]
fn retry_and_repeat_exclude_each_other_and_repeat_needs_a_count() {
    assert_one(
        &format!("{HEADER}[[step]]\nname = \"a\"\nhttp = \"/\"\nretry = {{ timeout = \"5s\" }}\nrepeat = {{ count = 3 }}\n"),
        "8:1",
        "step `a` has both `retry` and `repeat`",
    );
    assert_one(
        &format!("{HEADER}[[step]]\nname = \"a\"\nhttp = \"/\"\nrepeat = {{ count = 0 }}\n"),
        "7:20",
        "`count` 0 is out of range",
    );
}

#[test]
fn missing_sections_and_several_problems_are_all_reported_in_order() {
    let found = problems("[[step]]\nname = \"a\"\nrun = \"x\"\n[[step]]\nname = \"a\"\nfile = 3\n");
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(found[0].starts_with("s.toml:1:1: the file has no [scenario] table"));
    assert!(found[1].starts_with("s.toml:3:7: `run` must be"));
    assert!(found[2].starts_with("s.toml:5:8: duplicate step name `a`"));
    assert!(found[3].starts_with("s.toml:6:8: `file` must be a string"));
}

#[test]
fn the_shipped_scenarios_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(diagnostics) = parse(&path, &text) {
                panic!("{diagnostics}");
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no scenario in {}", dir.display());
}
