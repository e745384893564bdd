"""One booted container for the whole test session (booting is about a second, starting Bitpoll a
few more; building the root file system the first time about a minute)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import testbed  # noqa: E402


def host_problem() -> str | None:
    """Why this host cannot run the container testbed, or None when it can."""
    if os.geteuid() != 0:
        return "the systemd container testbed needs root (systemd-nspawn, mounts)"
    for tool in ("systemd-nspawn", "debootstrap", "nsenter", "ssh-keygen", "ssh", "nix-instantiate"):
        if not shutil.which(tool):
            return f"{tool} not found (ci/install.d/10-debian.sh installs it)"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlay file system"
    if not testbed.cgroup_mounts() and not testbed.host_runs_systemd():
        return "no cgroup hierarchy for systemd-nspawn to use"
    return None


def require_host() -> None:
    problem = host_problem()
    if problem:
        pytest.skip(f"cannot run systemd-nspawn here: {problem}")


@pytest.fixture(scope="session")
def bitpoll_src() -> Path:
    src = os.environ.get("BITPOLL_SRC")
    if not src:
        pytest.skip("BITPOLL_SRC is not set (a Bitpoll 0.11 checkout is needed to run Bitpoll in the container)")
    return Path(src)


@pytest.fixture(scope="session")
def container(bitpoll_src, tmp_path_factory):
    """A booted container with Bitpoll started by systemd from the module's rendered units."""
    require_host()
    layout_bin = testbed.prepare_layout(bitpoll_src)
    box = testbed.Container(tmp_path_factory.mktemp("container") / "state")
    info = box.up(layout_bin)
    print(f"\ncontainer up in {info.get('UP_SECONDS')} s: {info['BASE_URL']} {info['SSH_TARGET']}")
    box.info_values = info
    yield box
    problems = box.down()
    assert not problems, f"the container left: {problems}"
