"""What every part of the systemd container testbed shares: where things are, the one error
type, and small process and port helpers (container_testbed.py is the entry point)."""

from __future__ import annotations

import hashlib
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
RENDER_UNITS = REPO / "ci" / "render-units"
TEMPLATES = REPO / "package" / "files"
DEFAULT_STATE_DIR = Path(os.environ.get("BITPOLL_CONTAINER_DIR") or "/tmp/bitpoll-container")

# Where the container's Bitpoll lives, as on NixOS.
STORE = "/nix/store"
SERVICE_STATE_DIR = "/var/lib/bitpoll"
BACKUP_DIR = "/var/backup/bitpoll"
# Where `up --credentials` puts the secret files (root only), as an administrator would.
CREDENTIALS_DIR = "/etc/bitpoll-testbed/credentials"
# The PATH of commands run in the container, and of the units (passed to ci/render-units).
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The units enabled and started by `up`, in order.
STARTED_UNITS = ("bitpoll.socket", "bitpoll.service", "bitpoll-backup.timer", "bitpoll-clearsessions.timer")
CGROUP_PREFIX = "bitpoll-container-"
# The unit files a generation consists of (the target is the listen target of module/units.nix).
UNIT_SUFFIXES = (".service", ".socket", ".timer", ".target")
# Installed in the container as /usr/local/sbin/bitpoll-testbed-switch.
SWITCH_SCRIPT = Path(__file__).resolve().parent / "bitpoll-testbed-switch"


class TestbedError(Exception):
    """A failure with a one-line message for the user (and, when useful, a log excerpt)."""


def log(message: str) -> None:
    print(f"bitpoll-container: {message}", file=sys.stderr, flush=True)


# Nix's base-32 alphabet, so that the made-up store paths look like real ones.
NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz"


def store_hash(*parts: str) -> str:
    digest = int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:20], "big")
    return "".join(NIX_BASE32[(digest >> (5 * i)) & 31] for i in range(32))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("check", True)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    try:
        return subprocess.run(cmd, **kwargs)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()[-5:]
        raise TestbedError(
            f"{shlex.join(cmd)} failed (exit {exc.returncode}): " + " | ".join(detail)
        ) from exc


def reap(pid: int) -> None:
    """Collect `pid`'s exit status when it is our child, so no zombie is left behind. (A
    container started by the command line is orphaned when `up` returns; whether its zombie is
    collected then is up to the host's init.)"""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
