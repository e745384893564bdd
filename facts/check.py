"""Checks facts/nixpkgs.toml and the stand-ins generated from it (ci/checks.d/15-facts.sh).

1. Every entry names its source, the version read and how sure it is (facts/default.nix
   refuses one that does not), and the stand-ins build from the file.
2. Every package/python-modules/*.nix is called with the Python package set of the facts: each
   argument it takes must be a listed attribute (or one of the modules themselves).
3. The mechanism: in a copy of the repository without one fact (python3Packages.requests), the
   package's evaluation fails, and the message names the attribute and says to cite a source;
   an option the facts do not list fails the module's evaluation the same way.

Needs nixpkgs' lib (NIXPKGS_LIB); reports SKIPPED without it. Prints one line per check.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACTS = "facts/nixpkgs.toml"
failures: list[str] = []


def check(condition: bool, what: str, detail: str = "") -> None:
    print(f"ok   {what}" if condition else f"FAIL {what}" + (f": {detail}" if detail else ""))
    if not condition:
        failures.append(what)


def explain(stderr: str) -> str:
    """Nix's message for something the stand-ins lack, said as what to do about it."""
    for pattern, kind in (
        (r"attribute '([^']+)' missing", "attribute"),
        (r"called without required argument '([^']+)'", "attribute"),
        (r"undefined variable '([^']+)'", "attribute"),
        (r"The option `([^']+)' does not exist", "NixOS option"),
    ):
        match = re.search(pattern, stderr)
        if match:
            return (
                f"{kind} `{match.group(1)}` is not in {FACTS}: nixpkgs may not have it. Read its declaration "
                "in the nixpkgs sources and add it there with its source (docs/packaging.md), or stop using it"
            )
    return stderr.strip()[-1500:]


def nix_eval(expression: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["nix-instantiate", "--read-write-mode", "--eval", "--strict", "--json", "--expr", expression],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        result.stderr = explain(result.stderr) + "\n" + result.stderr
    return result


def python_modules_expression(root: Path, lib: str) -> str:
    return f"""
      let
        lib = import {lib};
        standIns = import {root}/facts {{ inherit lib; }};
        modules = import {root}/package/python-modules;
        base = standIns.pythonPackages {{
          behaviours = {{
            "python3Packages.buildPythonPackage" = f: builtins.attrNames (if builtins.isFunction f then f {{ version = "0"; pname = "x"; }} else f);
            "python3Packages.fetchPypi" = args: args;
            "python3Packages.python" = {{ interpreter = "python"; }};
            "python3Packages.callPackage" = path: args: lib.callPackageWith (set // {{ inherit lib; }}) path args;
          }};
        }};
        set = lib.fix (lib.extends modules (_: base));
      in
      builtins.mapAttrs (_: value: builtins.isList value) (modules set base)
    """


def build_script_expression(root: Path, lib: str) -> str:
    return (
        f'import {root}/package/build-script.nix {{ lib = import {lib}; which = "default"; '
        'interpreter = "/nonexistent/python"; noto = "/nonexistent/noto"; }'
    )


def main() -> int:
    lib = os.environ.get("NIXPKGS_LIB")
    if lib and Path(lib, "lib", "default.nix").is_file():
        lib = str(Path(lib, "lib"))
    if not lib:
        print("SKIPPED the facts checks: NIXPKGS_LIB is not set (a path to nixpkgs' lib)")
        return 0
    result = nix_eval(f"let s = import {ROOT}/facts {{ lib = import {lib}; }}; in builtins.length s.entries")
    check(
        result.returncode == 0,
        f"{FACTS}: every entry has its source, version read and sureness",
        result.stderr,
    )
    result = nix_eval(python_modules_expression(ROOT, lib))
    check(
        result.returncode == 0 and "false" not in result.stdout,
        "package/python-modules: every argument is a listed nixpkgs attribute or one of the modules",
        result.stderr,
    )
    result = nix_eval(build_script_expression(ROOT, lib))
    check(
        result.returncode == 0, "package/default.nix evaluates with the stand-ins of the facts", result.stderr
    )

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp, "repo")
        for part in ("facts", "package", "module"):
            shutil.copytree(ROOT / part, copy / part)
        facts = (copy / FACTS).read_text()
        entry = re.search(
            r'\n\[\[attribute\]\]\npath = "python3Packages.requests"\n(?:[^\[\n][^\n]*\n)*', facts
        )
        assert entry, "the requests fact is not where the check expects it"
        (copy / FACTS).write_text(facts.replace(entry.group(0), "\n"))
        result = nix_eval(build_script_expression(copy, lib))
        check(
            result.returncode != 0
            and "attribute `requests` is not in facts/nixpkgs.toml" in result.stderr
            and "add it there with its source" in result.stderr,
            "an attribute missing from the facts fails the evaluation, naming it and asking for its source",
            result.stderr or "it evaluated",
        )
        result = nix_eval(f"""
          let lib = import {lib}; standIns = import {copy}/facts {{ inherit lib; }}; in
          (lib.evalModules {{ modules = [ standIns.optionsModule {{ services.nginx.statusPage = true; }} ]; }}).config.services.nginx
        """)
        check(
            result.returncode != 0
            and "NixOS option `services.nginx.statusPage` is not in facts/nixpkgs.toml" in result.stderr,
            "an option missing from the facts fails the evaluation, naming it and asking for its source",
            result.stderr or "it evaluated",
        )
    print(f"{len(failures)} failed" if failures else "all facts checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
