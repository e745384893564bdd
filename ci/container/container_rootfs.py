"""The container's root file system: Debian with systemd, built once by debootstrap and cached.

The root file system is the same Debian release as the host, so the host's Python (pyenv) and the
process testbed's venv, both linked against the host's libc and libraries, run unchanged when
bind-mounted into the container. It is keyed by its recipe (release, architecture, packages and the
recipe's own version), built in a temporary directory and renamed into place only when complete, so
an interrupted build is never taken for a good one.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Bump when the post-processing below changes, so a rootfs built by an older recipe is not reused.
RECIPE_VERSION = 2

# systemd as PID 1 (systemd-sysv), D-Bus for systemctl and `systemd-analyze security` online,
# OpenSSH for the harness's ssh target, PostgreSQL, and the shared libraries that the host's pyenv Python and
# the usual binary wheels link against (the list comes from `ldd` on its lib-dynload modules, minus
# Tk and X11, which Bitpoll never imports). libpq5 serves psycopg when PostgreSQL is used.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "procps",
    "iproute2",
    # What scenarios run on the target besides systemd's tools: the monitoring scenario reads the
    # metrics and the health endpoint, which answer this machine only (NixOS has curl in its
    # core packages, facts/nixpkgs.toml environment.corePackages).
    "curl",
    "libssl3",
    "libsqlite3-0",
    "libffi8",
    "zlib1g",
    "libbz2-1.0",
    "liblzma5",
    "libreadline8",
    "libncursesw6",
    "libuuid1",
    "libexpat1",
    "libgdbm6",
    "libnsl2",
    "libtirpc3",
    "libpq5",
    # The local server for `database.createLocally`; disabled at boot unless a container asks.
    "postgresql",
)

COMPLETE_MARKER = ".bitpoll-rootfs.json"


class RootfsError(Exception):
    """A problem building the root file system, with a message for the user."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bitpoll-nix"


def host_release() -> str:
    """The host's Debian codename, read from /etc/os-release."""
    try:
        text = Path("/etc/os-release").read_text()
    except OSError as exc:
        raise RootfsError(f"cannot read /etc/os-release: {exc}") from exc
    match = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.M)
    if not match or "ID=debian" not in text:
        raise RootfsError(
            "the host is not a Debian release with a codename in /etc/os-release; the container needs the "
            "host's Debian release"
        )
    return match.group(1)


def _parse_one_line_sources(text: str):
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        # Options in brackets ("deb [signed-by=...] URI suite comps") carry no URI.
        line = re.sub(r"\[[^]]*\]", "", line)
        fields = line.split()
        if len(fields) >= 4:
            yield fields[1], fields[2].split(), fields[3:]


def _parse_deb822_sources(text: str):
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
            continue
        for uri in fields.get("uris", "").split():
            yield uri, fields.get("suites", "").split(), fields.get("components", "").split()


def host_mirror(release: str, apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror that apt on this host already uses for `release` main.

    Read at run time from the host's apt configuration, so the project names no mirror itself.
    """
    candidates = []
    for path in sorted(glob.glob(f"{apt_dir}/sources.list") + glob.glob(f"{apt_dir}/sources.list.d/*.list")):
        candidates += list(_parse_one_line_sources(Path(path).read_text()))
    for path in sorted(glob.glob(f"{apt_dir}/sources.list.d/*.sources")):
        candidates += list(_parse_deb822_sources(Path(path).read_text()))
    for uri, suites, components in candidates:
        if release in suites and "main" in components:
            return uri
    raise RootfsError(
        f"no apt source for '{release} main' in {apt_dir}/sources.list*; add the Debian mirror there"
    )


def recipe() -> dict:
    packages = PACKAGES
    return {
        "release": host_release(),
        "architecture": subprocess.run(
            ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
        ).stdout.strip(),
        "packages": sorted(packages),
        "recipe_version": RECIPE_VERSION,
    }


def rootfs_path() -> Path:
    key = hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / f"rootfs-{key}"


def remove_tree(path: Path) -> None:
    """Delete a (partial) root file system, unmounting first what debootstrap mounted inside.

    An interrupted debootstrap can leave /proc, /sys or a bind mount of the host's /dev mounted
    in the target; deleting through those would delete the host's files.
    """
    prefix = str(path.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point == prefix or point.startswith(prefix + "/"):
            raise RootfsError(f"{point} is still mounted; unmount it, then delete {path}")
    shutil.rmtree(path, ignore_errors=True)


def is_complete(path: Path) -> bool:
    return (path / COMPLETE_MARKER).is_file()


def _post_process(root: Path) -> None:
    """Make the fresh tree a neutral base that every container configures at boot.

    The host keys debootstrap generated would be shared by every container built from this cache,
    so they go; each container gets throwaway ones. sshd must not start with Debian's defaults: the
    container shares the host's network, and port 22 on every address is neither free nor allowed.
    The testbed enables it with its own listen address when it boots a container.
    """
    for key in root.glob("etc/ssh/ssh_host_*"):
        key.unlink()
    for link in ("etc/systemd/system/multi-user.target.wants/ssh.service", "etc/systemd/system/sshd.service"):
        (root / link).unlink(missing_ok=True)
    # Units that cannot work inside a container sharing the host's network and devices, masked so
    # that the system reaches "running" instead of "degraded" and tests can tell real failures.
    for unit in (
        "systemd-networkd-wait-online.service",
        "getty@tty1.service",
        "serial-getty@.service",
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "e2scrub_reap.service",
    ):
        target = root / "etc/systemd/system" / unit
        target.unlink(missing_ok=True)
        target.symlink_to("/dev/null")
    # PostgreSQL (Debian's cluster, created by the package) starts only in containers that use
    # it, and then listens on its unix socket only: on the host's network it would take port
    # 5432 on 127.0.0.1 from whoever else needs it.
    (root / "etc/systemd/system/multi-user.target.wants/postgresql.service").unlink(missing_ok=True)
    clusters = sorted(root.glob("etc/postgresql/*/main"))
    if not clusters:
        raise RootfsError("debootstrap installed postgresql but created no cluster in /etc/postgresql/*/main")
    for cluster in clusters:
        (cluster / "conf.d").mkdir(exist_ok=True)
        (cluster / "conf.d/bitpoll-testbed.conf").write_text(
            "# The container shares the host's network: the unix socket only.\nlisten_addresses = ''\n"
        )
    # The downloaded packages are not needed once installed.
    for deb in root.glob("var/cache/apt/archives/*.deb"):
        deb.unlink()
    # Each boot gets its own machine id (an empty file makes systemd generate a transient one).
    (root / "etc/machine-id").write_text("")
    # A persistent journal in the container's writable layer survives until `down`, for debugging.
    (root / "var/log/journal").mkdir(parents=True, exist_ok=True)


def build(log=sys.stderr) -> Path:
    """The path of a complete root file system, built now unless it is cached."""
    final = rootfs_path()
    if is_complete(final):
        return final
    for tool in ("debootstrap", "dpkg"):
        if not shutil.which(tool):
            raise RootfsError(f"{tool} not found; run ci/install.d/10-debian.sh (installs debootstrap)")
    if os.geteuid() != 0:
        raise RootfsError("building the root file system needs root (debootstrap)")
    final.parent.mkdir(parents=True, exist_ok=True)
    # One build at a time per recipe: a second caller waits and then finds the finished tree.
    with open(final.parent / f"{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_complete(final):
            return final
        spec = recipe()
        mirror = host_mirror(spec["release"])
        # Leftovers of an interrupted build (this lock was free, so nobody is writing them).
        for stale in final.parent.glob(f"{final.name}.tmp-*"):
            remove_tree(stale)
        if final.exists():
            remove_tree(final)
        tmp = final.parent / f"{final.name}.tmp-{os.getpid()}"
        start = time.monotonic()
        # debootstrap and the post-processing create the tree with the caller's umask; the
        # system inside needs the usual modes.
        umask = os.umask(0o022)
        try:
            _debootstrap(tmp, spec, mirror, log)
        finally:
            os.umask(umask)
        os.rename(tmp, final)
        print(f"root file system ready in {time.monotonic() - start:.0f} s: {final}", file=log, flush=True)
    return final


def _debootstrap(tmp: Path, spec: dict, mirror: str, log) -> None:
    print(f"building root file system {tmp} ({spec['release']}, from {mirror})", file=log, flush=True)
    cmd = [
        "debootstrap",
        "--variant=minbase",
        f"--arch={spec['architecture']}",
        "--include=" + ",".join(spec["packages"]),
        spec["release"],
        str(tmp),
        mirror,
    ]
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        remove_tree(tmp)
        tail = "\n".join(result.stdout.splitlines()[-20:])
        raise RootfsError(f"debootstrap failed (exit {result.returncode}); the last lines:\n{tail}")
    _post_process(tmp)
    (tmp / COMPLETE_MARKER).write_text(json.dumps(dict(spec, mirror=mirror), indent=2) + "\n")
