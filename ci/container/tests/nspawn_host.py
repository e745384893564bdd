"""What the container tests share: whether this host can run systemd-nspawn, and the testbed.

Deliberately not a conftest.py: other test directories import their own `conftest` by name, and
pytest keeps only one module of that name, so a second one would shadow theirs.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import container_testbed as testbed  # noqa: E402

__all__ = ["host_problem", "require_host", "testbed"]


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
