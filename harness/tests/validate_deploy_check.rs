//! `validate --eval-only` running Django's real `check --deploy`: a stand-in `nix` answers the
//! evaluation and "builds" the package as the process testbed's layout of a real Bitpoll (the
//! same wrapper and settings shim files as the Nix package) and the settings file as one written
//! here. A valid settings file passes with Django's deployment warnings printed; one the shim
//! refuses is exit 1 naming the option to set.
//!
//! Needs a Bitpoll checkout in BITPOLL_SRC; ignored with the reason otherwise.

#[path = "support/nix_standin.rs"]
mod nix_standin;
#[path = "support/process_testbed.rs"]
mod process_testbed;

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use nix_standin::StandIn;
use process_testbed::{repository, skip_reason, Testbed};

const PACKAGE_DRV: &str = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-bitpoll-0.11.0.drv";
const SETTINGS_DRV: &str = "/nix/store/ssssssssssssssssssssssssssssssss-bitpoll-settings.json.drv";

fn validate_with(testbed: &Testbed, settings: &str) -> Result<(i32, String), Failed> {
    let bin_dir = testbed
        .value("BIN_DIR")
        .ok_or("the testbed printed no BIN_DIR")?;
    let package = Path::new(bin_dir).parent().ok_or("BIN_DIR has no parent")?;
    let stand_in = StandIn::new(&format!(
        r#"case "$*" in
  *inspectConfiguration*) cat "$here/inspection.json" ;;
  *"{PACKAGE_DRV}^out"*) echo '{}' ;;
  *"{SETTINGS_DRV}^out"*) echo "$here/settings.json" ;;
  *) echo "error: unexpected call: $*" >&2; exit 9 ;;
esac"#,
        package.display()
    ));
    let units = stand_in.path("units");
    let rendered = Command::new(repository().join("ci/render-units"))
        .arg(&units)
        .output()
        .map_err(|e| format!("cannot run ci/render-units: {e}"))?;
    if !rendered.status.success() {
        return Err("ci/render-units failed".into());
    }
    let unit = std::fs::read_to_string(units.join("bitpoll.service")).map_err(|e| e.to_string())?;
    let inspection = serde_json::json!({
        "assertions": [],
        "warnings": [],
        "units": { "bitpoll.service": unit },
        "settingsFile": { "path": "/nix/store/x-bitpoll-settings.json", "drvPath": SETTINGS_DRV },
        "package": { "path": "/nix/store/y-bitpoll-0.11.0", "drvPath": PACKAGE_DRV },
    });
    std::fs::write(stand_in.path("inspection.json"), inspection.to_string())
        .map_err(|e| e.to_string())?;
    std::fs::write(stand_in.path("settings.json"), settings).map_err(|e| e.to_string())?;
    std::fs::write(
        stand_in.path("bitpoll.nix"),
        "{ services.bitpoll.enable = true; }\n",
    )
    .map_err(|e| e.to_string())?;
    let output = Command::new(env!("CARGO_BIN_EXE_bitpoll-harness"))
        .current_dir(stand_in.dir.path())
        .env("PATH", stand_in.search_path())
        // The module's environment is what validate sets, not the caller's.
        .env_remove("BITPOLL_SETTINGS_FILE")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("BITPOLL_STATE_DIR")
        .args([
            "validate",
            "--config",
            "bitpoll.nix",
            "--eval-only",
            "--system",
            "x86_64-linux",
        ])
        .arg("--flake")
        .arg(stand_in.dir.path())
        .output()
        .map_err(|e| format!("cannot run bitpoll-harness: {e}"))?;
    Ok((
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ))
}

fn deploy_check(source: &Path) -> Result<(), Failed> {
    let testbed = Testbed::start(source)?;
    // The settings a module would render for a public HTTPS deployment.
    let good = r#"{"ALLOWED_HOSTS": ["poll.example.org"], "BASE_URL": "https://poll.example.org"}"#;
    let (code, output) = validate_with(&testbed, good)?;
    if code != 0
        || !output.contains("bitpoll-manage check --deploy:\n  System check identified")
        || !output.contains("ok   django: check --deploy found no errors")
    {
        return Err(format!(
            "valid settings: expected exit 0 and Django's report, got {code}:\n{output}"
        )
        .into());
    }
    let bad = r#"{"ALLOWED_HOSTS": ["poll.example.org"], "BASE_URL": "poll.example.org"}"#;
    let (code, output) = validate_with(&testbed, bad)?;
    if code != 1
        || !output.contains("bitpoll: configuration error: setting BASE_URL in ")
        || !output.contains(
            "FAIL django: the settings are refused; set services.bitpoll.settings.BASE_URL as the message says",
        )
    {
        return Err(format!("a refused BASE_URL: expected exit 1 naming the option, got {code}:\n{output}").into());
    }
    Ok(())
}

fn main() {
    let arguments = Arguments::from_args();
    let source = std::env::var_os("BITPOLL_SRC").map(PathBuf::from);
    let reason = skip_reason(source.as_deref());
    if let Some(reason) = &reason {
        eprintln!("validate_deploy_check: skipped: {reason}");
    }
    let source = source.unwrap_or_default();
    let trial = Trial::test("eval_only_runs_djangos_deploy_checks", move || {
        deploy_check(&source)
    })
    .with_kind("needs BITPOLL_SRC")
    .with_ignored_flag(reason.is_some());
    libtest_mimic::run(&arguments, vec![trial]).exit();
}
