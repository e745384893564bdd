"""Which Bitpoll release a source tree is, from its content: a git checkout and a tarball alike.

A tree carries no version file, and its directory name says nothing reliable. The pins
(package/pins/bitpoll-VERSION.json) record the NAR hash of each release's tree as
fetchFromGitHub and the package's postFetch produce it (without NotoColorEmoji.ttf); the same
hash of the tree at hand, without that font and the build products no release tracks, names
the release exactly. Used by the testbeds and by ci/checks.d/20-pins.sh.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import shutil
import subprocess
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PINS = os.path.join(REPO, "package", "pins")
UNKNOWN = "0+unknown"

FONT = os.path.join("bitpoll", "base", "static", "fonts", "NotoColorEmoji.ttf")
# Build products and caches that Bitpoll's .gitignore lists and no release tracks (a testbed or
# `bitpoll-dev` may have left them in a checkout), and version control.
JUNK_NAMES = {".git", "__pycache__", "_static", "db.sqlite3"}
JUNK_PATTERNS = ("*.pyc", "*.mo")
JUNK_PATHS = {FONT, os.path.join("bitpoll", "settings_local.py")}


class UnknownTree(Exception):
    """The tree matches no pin; the message says what was compared."""


def export_tree(src: str, dest: str) -> None:
    """Copy what fetchFromGitHub would unpack, keeping symlinks and executable bits (the NAR
    hash covers both)."""

    def ignore(directory, names):
        relative = os.path.relpath(directory, src)
        return {
            name
            for name in names
            if name in JUNK_NAMES
            or any(fnmatch.fnmatch(name, pattern) for pattern in JUNK_PATTERNS)
            or os.path.normpath(os.path.join(relative, name)) in JUNK_PATHS
        }

    shutil.copytree(src, dest, symlinks=True, ignore=ignore)


def tree_hash(src: str) -> str:
    """The SRI NAR hash of the tree as a pin records it; needs `nix`."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = os.path.join(tmp, "tree")
        export_tree(src, tree)
        result = subprocess.run(
            ["nix", "--extra-experimental-features", "nix-command", "hash", "path", tree],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise UnknownTree(f"cannot hash {src} with nix: {result.stderr.strip()}")
    return result.stdout.strip()


def pins() -> dict[str, str]:
    """version -> pinned hash, for every pin file."""
    found = {}
    for path in sorted(glob.glob(os.path.join(PINS, "bitpoll-*.json"))):
        with open(path) as handle:
            pin = json.load(handle)
        found[pin["version"]] = pin["hash"]
    return found


def release_of(src: str) -> str:
    """The release whose pinned hash the tree has; UnknownTree (naming the tree's hash and the
    pins compared) when none, or when nix cannot hash it."""
    if not os.path.isfile(os.path.join(src, "manage.py")):
        raise UnknownTree(f"{src} is not a Bitpoll source tree (no manage.py)")
    if shutil.which("nix") is None:
        raise UnknownTree("nix is not installed, so the tree cannot be compared with the pins")
    actual = tree_hash(src)
    known = pins()
    for version, expected in known.items():
        if actual == expected:
            return version
    compared = ", ".join(f"{version} {expected}" for version, expected in known.items())
    raise UnknownTree(f"the tree of {src} hashes to {actual}, which matches no pin ({compared})")
