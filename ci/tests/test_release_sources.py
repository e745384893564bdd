"""Telling a Bitpoll tree's release by its content, and downloading a pinned release.

Version detection (ci/testbed/source_version.py) on a git checkout, on a tarball's tree and on
an unknown tree; the download (ci/testbed/release_source.py) from a local HTTP server on
127.0.0.1 serving a tarball made from the checkout: the right tree is accepted, a tampered one
(one byte changed) is refused before anything uses it, and no server at all is a clear error.
"""

from __future__ import annotations

import functools
import http.server
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "ci" / "testbed"))

import release_source  # noqa: E402
import source_version  # noqa: E402


@pytest.fixture(scope="module")
def checkout() -> Path:
    src = os.environ.get("BITPOLL_SRC")
    if not src:
        pytest.skip("BITPOLL_SRC is not set (a checkout of the pinned Bitpoll 0.11.0 is needed)")
    if not shutil.which("nix"):
        pytest.skip("nix is not installed (ci/install.d/10-debian.sh installs it); the tree hash needs it")
    return Path(src)


def test_a_git_checkout_is_told_by_its_content(checkout, tmp_path):
    tree = tmp_path / "no-version-in-this-name"
    shutil.copytree(checkout, tree, symlinks=True)
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.org",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.org",
    )
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        subprocess.run(command, cwd=tree, check=True, env=env)
    assert (tree / ".git").is_dir()
    assert source_version.release_of(str(tree)) == "0.11.0"


def tarball_of(tree: Path, top: str, change: bool = False) -> bytes:
    """A GitHub-style tarball (one top directory); `change` alters one byte of manage.py."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(tree.rglob("*")):
            name = f"{top}/{path.relative_to(tree)}"
            if change and path.name == "manage.py" and path.parent == tree:
                data = bytearray(path.read_bytes())
                data[0] ^= 1
                info = tar.gettarinfo(str(path), arcname=name)
                tar.addfile(info, io.BytesIO(bytes(data)))
            else:
                tar.add(str(path), arcname=name, recursive=False)
    return buffer.getvalue()


def test_a_tarball_tree_and_an_unknown_tree(checkout, tmp_path):
    with tarfile.open(fileobj=io.BytesIO(tarball_of(checkout, "Bitpoll-x"))) as tar:
        tar.extractall(tmp_path / "tarball", filter="data")
    assert source_version.release_of(str(tmp_path / "tarball" / "Bitpoll-x")) == "0.11.0"
    (tmp_path / "tarball" / "Bitpoll-x" / "README.md").write_text("changed\n")
    with pytest.raises(source_version.UnknownTree) as unknown:
        source_version.release_of(str(tmp_path / "tarball" / "Bitpoll-x"))
    message = str(unknown.value)
    assert "matches no pin" in message and "0.10.0 sha256-" in message and "0.11.0 sha256-" in message


class Archive(http.server.BaseHTTPRequestHandler):
    """Serves one tarball at the path GitHub would serve the pinned revision's."""

    def __init__(self, path: str, body: bytes, *args, **kwargs):
        self.archive_path, self.body = path, body
        super().__init__(*args, **kwargs)

    def do_GET(self):  # noqa: N802 (the handler's protocol)
        if self.path != self.archive_path:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_):
        pass


def serve(body: bytes):
    pin = release_source.pin("current")
    path = f"/{pin['owner']}/{pin['repo']}/archive/{pin['rev']}.tar.gz"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Archive, path, body))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_the_download_is_verified_against_the_pin(checkout, tmp_path):
    pin = release_source.pin("current")
    top = f"{pin['repo']}-{pin['rev']}"
    server, base = serve(tarball_of(checkout, top))
    try:
        tree = release_source.fetch("current", cache=tmp_path / "cache", base=base)
    finally:
        server.shutdown()
    assert (tree / "manage.py").is_file() and source_version.release_of(str(tree)) == "0.11.0"
    # Cached: no server is needed the second time.
    assert release_source.fetch("current", cache=tmp_path / "cache", base="http://127.0.0.1:9") == tree

    server, base = serve(tarball_of(checkout, top, change=True))
    try:
        with pytest.raises(release_source.SourceError) as refused:
            release_source.fetch("current", cache=tmp_path / "tampered", base=base)
    finally:
        server.shutdown()
    assert "hashes to sha256-" in str(refused.value) and f"pins {pin['hash']}; refusing to use it" in str(
        refused.value
    )
    assert not [
        p for p in (tmp_path / "tampered").iterdir() if not p.name.startswith("tmp")
    ], "a refused tree was kept"


def test_no_server_is_a_clear_error_naming_the_variable(tmp_path):
    with pytest.raises(release_source.SourceError) as failed:
        release_source.fetch("previous", cache=tmp_path, base="http://127.0.0.1:9")
    assert "cannot download Bitpoll 0.10.0 from http://127.0.0.1:9/" in str(failed.value)
    assert "set BITPOLL_SRC_PREVIOUS to a Bitpoll 0.10.0 checkout instead" in str(failed.value)
