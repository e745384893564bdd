"""The host side of a container: its cgroups (the host has no systemd) and its mounts."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

from container_common import CGROUP_PREFIX

# ---------------------------------------------------------------------------------------------
# cgroups: the host has no systemd, so nspawn --keep-unit uses the cgroup it was started in. Each
# container gets its own, so that parallel containers do not share nspawn's "payload" group and
# `down` can remove exactly what this container left.


def cgroup_mounts() -> list[tuple[Path, str]]:
    """(mount point, our cgroup path) for the hierarchies nspawn uses: name=systemd and cgroup2."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hid, controllers, path = line.split(":", 2)
        if hid == "0":
            own["unified"] = path
        elif "name=systemd" in controllers.split(","):
            own["systemd"] = path
    result = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mountpoint, fstype, options = line.split()[:4]
        if fstype == "cgroup2" and "unified" in own:
            result.append((Path(mountpoint), own["unified"]))
        elif fstype == "cgroup" and "name=systemd" in options.split(",") and "systemd" in own:
            result.append((Path(mountpoint), own["systemd"]))
    return result


def host_runs_systemd() -> bool:
    return Path("/run/systemd/system").is_dir()


def make_cgroups(name: str) -> list[str]:
    dirs = []
    for mountpoint, path in cgroup_mounts():
        directory = mountpoint / path.lstrip("/") / f"{CGROUP_PREFIX}{name}"
        directory.mkdir(exist_ok=True)
        dirs.append(str(directory))
    return dirs


def remove_cgroups(dirs: list[str]) -> list[str]:
    """Remove the cgroup trees (deepest first); returns those that could not be removed."""
    left = []
    for top in dirs:
        if not os.path.isdir(top):
            continue
        for attempt in range(50):
            try:
                for current, subdirs, _ in sorted(os.walk(top), key=lambda entry: -entry[0].count("/")):
                    for sub in subdirs:
                        try:
                            os.rmdir(os.path.join(current, sub))
                        except FileNotFoundError:
                            pass
                os.rmdir(top)
                break
            except OSError as exc:
                if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY) or attempt == 49:
                    left.append(top)
                    break
                time.sleep(0.1)
    return left


def cgroup_pids(dirs: list[str]) -> set[int]:
    pids = set()
    for top in dirs:
        for current, _, files in os.walk(top):
            if "cgroup.procs" in files:
                try:
                    pids |= {int(p) for p in Path(current, "cgroup.procs").read_text().split()}
                except OSError:
                    pass
    return pids


# ---------------------------------------------------------------------------------------------
# Mounts.


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def unmount_all(path: Path) -> list[str]:
    left = []
    for point in mounts_under(path):
        result = subprocess.run(["umount", point], capture_output=True, text=True)
        if result.returncode != 0:
            left.append(f"{point}: {result.stderr.strip()}")
    return left


def is_our_nspawn(pid: int, machine: str | None) -> bool:
    """Guards against a recycled pid: the process must be systemd-nspawn running our machine."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (
        bool(cmdline)
        and cmdline[0].endswith(b"systemd-nspawn")
        and f"--machine={machine}".encode() in cmdline
    )
