"""Shared by the module's tests: evaluating Nix and rendering units."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "module"
EVAL = MODULE / "tests" / "eval.nix"
RENDER_UNITS = REPO / "ci" / "render-units"

needs_nix = pytest.mark.skipif(
    shutil.which("nix-instantiate") is None, reason="nix-instantiate not found (install Nix >= 2.8)"
)


def nixpkgs_lib() -> str | None:
    """The path to nixpkgs' lib directory (NIXPKGS_LIB), or None when unset."""
    value = os.environ.get("NIXPKGS_LIB")
    if not value:
        return None
    path = Path(value)
    # Accept both a nixpkgs(-lib) checkout and its lib directory.
    if (path / "lib" / "default.nix").is_file():
        path = path / "lib"
    return str(path)


needs_nixpkgs_lib = pytest.mark.skipif(
    nixpkgs_lib() is None or shutil.which("nix-instantiate") is None,
    reason="NIXPKGS_LIB is not set (a path to nixpkgs' lib, e.g. from nix-community/nixpkgs.lib) "
    "or nix-instantiate is missing",
)


class NixError(Exception):
    pass


def nix_eval(
    expression_file: Path,
    attr: str | None = None,
    args: dict[str, str] | None = None,
    read_write: bool = False,
):
    """`nix-instantiate --eval --strict --json` of a file; args are Nix expressions (--arg)."""
    cmd = ["nix-instantiate", "--eval", "--strict", "--json", str(expression_file)]
    if read_write:
        # Needed where the evaluation writes files (builtins.toFile) and reads them back.
        cmd.insert(1, "--read-write-mode")
    for name, value in (args or {}).items():
        cmd += ["--arg", name, value]
    if attr:
        cmd += ["-A", attr]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NixError(result.stderr.strip())
    return json.loads(result.stdout)


def evaluate_module(configuration: str, attr: str = "result"):
    """Evaluate services.bitpoll with the given NixOS configuration (a Nix expression)."""
    return nix_eval(
        EVAL,
        attr=attr,
        args={"libPath": nixpkgs_lib(), "configuration": configuration},
        read_write=True,
    )


def render_units(outdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RENDER_UNITS), str(outdir), *args], capture_output=True, text=True, check=False
    )


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values in order]}}."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a Key=value line: {line}"
        current.setdefault(key, []).append(value)
    return sections
