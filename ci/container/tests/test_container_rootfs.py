"""The root file system's recipe: the mirror comes from the host's apt configuration, and a
partial tree is deleted without deleting through what is mounted inside it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import container_rootfs as rootfs  # noqa: E402

# The example host names are placeholders (RFC 2606): the code must take whatever the file says.
DEB822 = """\
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb-src
URIs: http://sources-only.example/debian
Suites: bookworm
Components: main

Types: deb
# a comment inside the stanza
URIs: http://mirror.example/debian
  http://second.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def write_apt(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_mirror_from_deb822_skips_disabled_and_source_stanzas(tmp_path):
    apt = write_apt(tmp_path, {"sources.list.d/debian.sources": DEB822})
    assert rootfs.host_mirror("bookworm", apt) == "http://mirror.example/debian"


def test_mirror_from_one_line_sources_with_options(tmp_path):
    apt = write_apt(
        tmp_path,
        {
            "sources.list": "# deb http://commented.example/debian bookworm main\n"
            "deb-src http://src.example/debian bookworm main\n"
            "deb [arch=amd64 signed-by=/k.gpg] http://one-line.example/debian bookworm main\n",
        },
    )
    assert rootfs.host_mirror("bookworm", apt) == "http://one-line.example/debian"


def test_mirror_must_serve_the_release_and_main(tmp_path):
    apt = write_apt(
        tmp_path,
        {
            "sources.list": "deb http://other.example/debian trixie main\n"
            "deb http://contrib.example/debian bookworm contrib\n"
        },
    )
    with pytest.raises(rootfs.RootfsError, match="no apt source for 'bookworm main'"):
        rootfs.host_mirror("bookworm", apt)


def test_the_recipe_keys_the_cache():
    if not Path("/etc/os-release").is_file() or "ID=debian" not in Path("/etc/os-release").read_text():
        pytest.skip("not a Debian host: the rootfs recipe follows the host's Debian release")
    path = rootfs.rootfs_path()
    assert path.name.startswith("rootfs-") and len(path.name) == len("rootfs-") + 12
    assert rootfs.recipe()["packages"] == sorted(rootfs.PACKAGES)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_removing_a_partial_tree_never_deletes_through_its_mounts(tmp_path):
    # What an interrupted debootstrap can leave: a host directory bind-mounted inside the tree.
    host_dir = tmp_path / "host-dev"
    host_dir.mkdir()
    (host_dir / "precious").write_text("keep me")
    partial = tmp_path / "rootfs-x.tmp-1"
    (partial / "dev").mkdir(parents=True)
    (partial / "etc").mkdir()
    (partial / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    subprocess.run(["mount", "--bind", str(host_dir), str(partial / "dev")], check=True)
    try:
        rootfs.remove_tree(partial)
    finally:
        subprocess.run(["umount", str(partial / "dev")], capture_output=True)
    assert not partial.exists()
    assert (host_dir / "precious").read_text() == "keep me"
