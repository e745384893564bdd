"""A pinned Bitpoll release's source, for the testbeds when no checkout is given.

The release is the one package/default.nix (or package/previous.nix) pins in
package/pins/bitpoll-VERSION.json. Its tarball is downloaded from GitHub (or from
$BITPOLL_DOWNLOAD_BASE, a server with the same /OWNER/REPO/archive/REV.tar.gz layout) and
unpacked, and its tree is hashed as Nix hashes what fetchFromGitHub and the package's postFetch
give (source_version.tree_hash): only a tree with exactly the pinned hash is used, and it is
kept in the cache marked as verified.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import source_version

REPO = Path(source_version.REPO)
DEFAULT_BASE = "https://github.com"
BASE_VARIABLE = "BITPOLL_DOWNLOAD_BASE"
# The Nix file that pins each release the testbeds may need.
PINNED_BY = {"current": REPO / "package" / "default.nix", "previous": REPO / "package" / "previous.nix"}


class SourceError(Exception):
    """A release could not be had; the message says why and what to do instead."""


def pin(which: str) -> dict:
    """The pin (owner, repo, rev, hash, version) that package/default.nix or previous.nix names."""
    nix_file = PINNED_BY[which]
    match = re.search(r"pins/(bitpoll-[0-9.]*[0-9]\.json)", nix_file.read_text())
    if not match:
        raise SourceError(
            f"{nix_file.relative_to(REPO)} names no pin file (package/pins/bitpoll-VERSION.json)"
        )
    return json.loads((REPO / "package" / "pins" / match.group(1)).read_text())


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bitpoll-nix" / "sources"


def fetch(which: str, cache: Path | None = None, base: str | None = None) -> Path:
    """The verified source tree of the pinned `which` release, downloaded once."""
    wanted = pin(which)
    cache = cache or cache_root()
    dest = cache / f"bitpoll-{wanted['version']}-{wanted['rev'][:12]}"
    # Beside the tree, not in it: the tree must keep exactly the pinned content.
    verified = dest.with_name(dest.name + ".verified")
    if verified.is_file() and dest.is_dir():
        return dest
    base = (base or os.environ.get(BASE_VARIABLE) or DEFAULT_BASE).rstrip("/")
    url = f"{base}/{wanted['owner']}/{wanted['repo']}/archive/{wanted['rev']}.tar.gz"
    variable = "BITPOLL_SRC" if which == "current" else "BITPOLL_SRC_PREVIOUS"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        archive = Path(tmp, "source.tar.gz")
        try:
            with urllib.request.urlopen(url, timeout=120) as response, archive.open("wb") as out:
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise SourceError(
                f"cannot download Bitpoll {wanted['version']} from {url}: {reason}; set {variable} to a "
                f"Bitpoll {wanted['version']} checkout instead"
            ) from None
        unpacked = Path(tmp, "unpacked")
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="data")
        except (tarfile.TarError, OSError) as error:
            raise SourceError(
                f"the download from {url} is not a readable tarball ({error}); refusing it"
            ) from None
        tops = list(unpacked.iterdir())
        if len(tops) != 1 or not tops[0].is_dir():
            raise SourceError(f"the tarball from {url} does not hold one top directory; refusing it")
        try:
            actual = source_version.tree_hash(str(tops[0]))
        except source_version.UnknownTree as error:
            raise SourceError(f"cannot verify the download from {url}: {error}") from None
        if actual != wanted["hash"]:
            raise SourceError(
                f"the download from {url} hashes to {actual}, but package/pins/bitpoll-{wanted['version']}.json "
                f"pins {wanted['hash']}; refusing to use it (set {variable} to a checkout you trust instead)"
            )
        if dest.exists():
            shutil.rmtree(dest)
        tops[0].rename(dest)
        verified.write_text(f"{actual}\n")
    return dest
