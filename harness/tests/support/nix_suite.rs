//! What the tests of `vm`, `validate` and `gate` share: the repository, a stand-in `nix` for
//! the VM suite, and the argument vectors of the calls it expects.

// Every test binary includes this file and each uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use crate::nix_standin::{nix_call, vm_output, StandIn, FAILING, PASSING};

pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

pub const CHECKS: &str = r#"["bitpoll","hardening","vm-deployment","vm-migrations"]"#;

/// A stand-in whose `eval` lists CHECKS and whose builds of `vm-NAME.run` print
/// `DIR/out-NAME`, prepared with a real report: deployment passes, migrations fails.
pub fn vm_stand_in() -> StandIn {
    let stand_in = StandIn::new(&format!(
        r#"case "$*" in
  *"--apply builtins.attrNames"*) echo '{CHECKS}' ;;
  *".vm-deployment.run"*) echo "$here/out-deployment" ;;
  *".vm-migrations.run"*) echo "$here/out-migrations" ;;
  *) echo "error: unexpected call: $*" >&2; exit 9 ;;
esac"#
    ));
    vm_output(&stand_in.path("out-deployment"), PASSING);
    vm_output(&stand_in.path("out-migrations"), FAILING);
    stand_in
}

pub fn list_checks(flake: &str) -> Vec<String> {
    nix_call(&[
        "eval",
        "--json",
        &format!("{flake}#checks.x86_64-linux"),
        "--apply",
        "builtins.attrNames",
    ])
}

pub fn build_run(flake: &str, scenario: &str, extra: &[&str]) -> Vec<String> {
    let installable = format!("{flake}#checks.x86_64-linux.vm-{scenario}.run");
    let mut args = vec!["build", "-L", "--no-link", "--print-out-paths"];
    args.extend(extra);
    args.push(&installable);
    nix_call(&args)
}
