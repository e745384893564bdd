"""The systemd container testbed: Bitpoll under a real systemd, with the module's own units.

`up` boots the cached Debian root file system (see rootfs.py) with systemd-nspawn, on an overlay
so the cache is never written, installs Bitpoll as the package lays it out at a /nix/store-like
path (read-only bind mounts of the process testbed's prepared layout), the unit files that
ci/render-units renders from module/units.nix, a `bitpoll` system user and an SSH server, then
starts the units. `down` stops the container and removes every mount, cgroup and file it made.

Networking: the container shares the host's network namespace (no --private-network). Every
service it runs that listens (sshd, bitpoll.socket) is bound to 127.0.0.1 on a free port chosen at
`up`, and sshd is configured before it first starts, so nothing listens elsewhere. That keeps the
project's rule (network only on 127.0.0.1) without creating, routing and cleaning up network
namespaces and veth pairs, and the harness reaches both ports directly. The services' own
PrivateNetwork= still takes effect inside (a socket-activated service gets its socket from
systemd, so it never needs the network it lives in).

State of one container lives in its state directory (default /tmp/bitpoll-container):
  state.json      what `up` made (pids, ports, paths); read by `down`, `env`, `exec`
  root/           the overlay mount (the container's root), over the cached rootfs
  upper/ work/    the overlay's writable layer
  store/          the /nix/store the container sees (bind-mounted read-only)
  units/          what ci/render-units rendered
  ssh/            throwaway client key, host key, known_hosts and ssh_config
  console.log     the container's console
"""

from __future__ import annotations

import base64
import ctypes
import dataclasses
import errno
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import container_rootfs as rootfs

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
SWITCH_SCRIPT = """\
#!/bin/sh
# bitpoll-testbed-switch GENERATION: what NixOS's switch-to-configuration does to Bitpoll's units
# when the system changes to that generation (a package version, or VERSION-portN: the same
# package listening on port N). The rule, as switch-to-configuration-ng applies it (sources in
# facts/nixpkgs.toml):
#   1. a unit the new generation lacks is stopped, with its old file still loaded;
#   2. the new files are installed and systemd reloads them;
#   3. a changed bitpoll.service is restarted, not stopped (stopIfChanged = false), and changed
#      timers are restarted; changed housekeeping services (restartIfChanged = false) and a
#      changed socket are left alone (switch-to-configuration does nothing for sockets);
#   4. every active target is started again, which starts what it wants that is not running:
#      new units, and those stopped in 1 or with them.
# Switching to the running generation changes nothing. Written by ci/container/container_testbed.py.
set -eu
packages=/etc/bitpoll-testbed/packages
if [ $# -ne 1 ] || [ ! -d "$packages/$1" ]; then
  known=$(ls "$packages" | tr '\\n' ' ')
  echo "bitpoll-testbed-switch: usage: bitpoll-testbed-switch GENERATION, one of: $known" >&2
  exit 2
fi
new=$packages/$1
removed=""
for unit in /etc/systemd/system/bitpoll*.service /etc/systemd/system/bitpoll*.socket \\
  /etc/systemd/system/bitpoll*.timer /etc/systemd/system/bitpoll*.target; do
  [ -f "$unit" ] || continue
  name=${unit##*/}
  if [ ! -f "$new/$name" ]; then
    systemctl stop "$name"
    rm -f "$unit"
    removed="$removed $name"
  fi
done
changed=""
for unit in "$new"/*.service "$new"/*.socket "$new"/*.timer "$new"/*.target; do
  [ -f "$unit" ] || continue
  name=${unit##*/}
  if ! cmp -s "$unit" "/etc/systemd/system/$name"; then
    install -m 0644 "$unit" /etc/systemd/system/
    changed="$changed $name"
  fi
done
install -m 0755 "$new"/bin/* /usr/local/bin/
echo "$1" > /etc/bitpoll-testbed/current
if [ -z "$changed$removed" ]; then
  echo "bitpoll-testbed-switch: $1 is running; no unit changed"
  exit 0
fi
systemctl daemon-reload
for name in $changed; do
  case $name in
    bitpoll.service | *.timer) systemctl restart "$name" ;;
  esac
done
# As switch-to-configuration does: not the sleep targets, nor those that refuse a manual start.
targets=""
for target in $(systemctl list-units --type=target --state=active --plain --no-legend | awk '{print $1}'); do
  case $target in suspend.target | hibernate.target | hybrid-sleep.target) continue ;; esac
  [ "$(systemctl show -P RefuseManualStart "$target")" = yes ] && continue
  targets="$targets $target"
done
systemctl start $targets
echo "bitpoll-testbed-switch: $1 is running; changed:$changed; removed:$removed"
"""


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


# ---------------------------------------------------------------------------------------------
# The app layout: what the process testbed prepared, mapped to store paths inside the container.


class Layout:
    """Bitpoll as the process testbed laid it out on the host, read from its rendered wrappers.

    The wrappers are the contract: they name the interpreter, the app directory (manage.py, the
    `bitpoll` package with the settings shim, bitpoll_ops.py), the collected static files and the
    version. The container gets the same trees, read-only, at store paths, and wrappers rendered
    from the same templates (package/files/*.in) with those store paths.
    """

    WRAPPERS = ("bitpoll-manage", "bitpoll-server", "bitpoll-ops")

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        ops = bin_dir / "bitpoll-ops"
        if not ops.is_file():
            raise TestbedError(
                f"{ops} not found; pass --layout-bin the bin directory of the process testbed's layout "
                "(with bitpoll-manage, bitpoll-server, bitpoll-ops)"
            )
        text = ops.read_text()

        def field(pattern: str, what: str) -> str:
            match = re.search(pattern, text, re.M)
            if not match:
                raise TestbedError(
                    f"{ops}: cannot find {what}; it does not look rendered from package/files/bitpoll-ops.in"
                )
            return match.group(1)

        self.python = Path(field(r"^exec '([^']+)' '[^']+/bitpoll_ops\.py'", "the interpreter"))
        self.app_dir = Path(field(r"^export BITPOLL_APP_DIR='([^']+)'", "BITPOLL_APP_DIR"))
        self.static_root = Path(field(r"^export BITPOLL_STATIC_ROOT='([^']+)'", "BITPOLL_STATIC_ROOT"))
        self.version = field(r"^export BITPOLL_VERSION='([^']+)'", "BITPOLL_VERSION")
        for path, what in ((self.app_dir / "manage.py", "manage.py"), (self.static_root, "the static root")):
            if not path.exists():
                raise TestbedError(
                    f"{path} ({what}, named by {ops}) does not exist; rebuild the process testbed's layout"
                )

        # A venv: its pyvenv.cfg names the base interpreter's bin directory; the packages are in
        # its site-packages. A base interpreter is used as it is.
        venv = self.python.parent.parent
        cfg = venv / "pyvenv.cfg"
        if cfg.is_file():
            home = re.search(r"^home\s*=\s*(.+)$", cfg.read_text(), re.M)
            if not home:
                raise TestbedError(f"{cfg} has no 'home' line")
            self.base_prefix = Path(home.group(1).strip()).resolve().parent
            self.venv: Path | None = venv
        else:
            self.base_prefix = self.python.resolve().parent.parent
            self.venv = None
        out = run(
            [
                str(self.python),
                "-c",
                "import sys, sysconfig; print(sys.version_info[0], sys.version_info[1], "
                "sys.version.split()[0]); print(sysconfig.get_paths()['purelib'])",
            ]
        ).stdout.split("\n")
        major, minor, self.python_version = out[0].split()
        self.python_xy = f"python{major}.{minor}"
        self.site_packages = Path(out[1])
        base_python = self.base_prefix / "bin" / self.python_xy
        if not base_python.exists():
            raise TestbedError(
                f"{base_python} not found; the interpreter of {self.python} must live in a prefix with "
                f"bin/{self.python_xy}"
            )

        key = str(self.bin_dir.resolve())
        self.c_base = f"{STORE}/{store_hash('python', str(self.base_prefix))}-python3-{self.python_version}"
        self.c_env = f"{STORE}/{store_hash('env', key)}-bitpoll-python-env"
        self.c_package = f"{STORE}/{store_hash('package', key)}-bitpoll-{self.version}"
        self.c_app = f"{self.c_package}/lib/bitpoll"
        self.c_static = f"{self.c_package}/share/bitpoll/static"
        self.c_python = f"{self.c_env}/bin/python" if self.venv else f"{self.c_base}/bin/{self.python_xy}"

    def ensure_readable(self) -> None:
        """Every mounted tree must be readable by everyone, as the Nix store is: the service runs
        as `bitpoll`, not as the user who built the layout.

        A layout built under a restrictive umask (a test process that ran the ops tool in-process
        inherits its umask 077) has private files; they are opened up here, which changes no
        content and only brings the layout closer to what the package is.
        """
        trees = [self.base_prefix, self.app_dir, self.static_root] + (
            [self.site_packages] if self.venv else []
        )
        changed = 0
        for tree in trees:
            for directory, _, files in os.walk(tree):
                for name in [""] + files:
                    path = os.path.join(directory, name) if name else directory
                    try:
                        mode = os.lstat(path).st_mode
                    except OSError:
                        continue
                    if stat.S_ISLNK(mode):
                        continue
                    wanted = 0o055 if stat.S_ISDIR(mode) or mode & 0o100 else 0o044
                    if mode & wanted != wanted:
                        try:
                            os.chmod(path, stat.S_IMODE(mode) | wanted)
                        except OSError as exc:
                            raise TestbedError(
                                f"{path} is not readable by other users (mode {stat.S_IMODE(mode):04o}) and "
                                f"cannot be changed ({exc.strerror}); the service runs as 'bitpoll': "
                                "rebuild the layout under umask 022"
                            ) from None
                        changed += 1
        if changed:
            log(
                f"made {changed} files of the layout readable by other users, as the Nix store is (they "
                "were built under a restrictive umask)"
            )

    def render_wrapper(self, name: str) -> str:
        template = TEMPLATES / f"{name}.in"
        text = template.read_text()
        values = {
            "python": self.c_python,
            "appDir": self.c_app,
            "staticRoot": self.c_static,
            "version": self.version,
        }
        for key, value in values.items():
            text = text.replace(f"@{key}@", value)
        left = re.findall(r"@[A-Za-z]+@", text)
        if left:
            raise TestbedError(
                f"{template}: placeholders {', '.join(sorted(set(left)))} are unknown to the container "
                "testbed (ci/container/testbed.py)"
            )
        return text

    def assemble(self, store: Path) -> list[tuple[Path, str]]:
        """Write the small files of the store into `store` and return the bind mounts to add.

        The big trees (interpreter, site-packages, app, static files) are bind-mounted read-only
        over empty directories made here, so nothing is copied.
        """

        def host(container_path: str) -> Path:
            return store / container_path[len(STORE) + 1 :]

        mounts: list[tuple[Path, str]] = [(self.base_prefix, self.c_base)]
        # Two packages may share an interpreter (and then one store path for it).
        host(self.c_base).mkdir(parents=True, exist_ok=True)
        if self.venv:
            env = host(self.c_env)
            (env / "bin").mkdir(parents=True)
            (env / "pyvenv.cfg").write_text(
                f"home = {self.c_base}/bin\ninclude-system-site-packages = false\nversion = "
                f"{self.python_version}\n"
            )
            (env / "bin" / "python").symlink_to(f"{self.c_base}/bin/{self.python_xy}")
            (env / "bin" / "python3").symlink_to("python")
            site = env / "lib" / self.python_xy / "site-packages"
            site.mkdir(parents=True)
            mounts.append((self.site_packages, f"{self.c_env}/lib/{self.python_xy}/site-packages"))
        package = host(self.c_package)
        (package / "bin").mkdir(parents=True)
        for name in self.WRAPPERS:
            wrapper = package / "bin" / name
            wrapper.write_text(self.render_wrapper(name))
            wrapper.chmod(0o555)
        host(self.c_app).mkdir(parents=True)
        host(self.c_static).mkdir(parents=True)
        mounts += [(self.app_dir, self.c_app), (self.static_root, self.c_static)]
        return mounts


def prepare_layout(src: Path) -> Path:
    """The bin directory of the process testbed's layout for checkout `src` (built once, cached)."""
    sys.path.insert(0, str(REPO / "ci" / "testbed"))
    try:
        import bitpoll_testbed
    except ImportError as exc:
        raise TestbedError(f"cannot load the process testbed (ci/testbed/bitpoll_testbed.py): {exc}") from exc
    try:
        build = bitpoll_testbed.prepare(str(src))
    except bitpoll_testbed.TestbedError as exc:
        raise TestbedError(f"the process testbed could not prepare {src}: {exc}") from exc
    return Path(build.bin_dir)


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


# ---------------------------------------------------------------------------------------------
# The container.


@dataclasses.dataclass
class Setup:
    """What `up` installs: the active package and others, the database, extra arguments for
    ci/render-units, extra settings, and whether the secrets come as credentials."""

    layout: Layout | None
    others: list[Layout]
    db: str
    render_args: list[str]
    settings: dict
    credentials: bool
    # Ports of further generations of the active package that listen elsewhere
    # (VERSION-portN), for `bitpoll-testbed-switch` to move the listener.
    switch_ports: list[int]


class Container:
    def __init__(self, state_dir: Path = DEFAULT_STATE_DIR, stop_with_caller: bool = False):
        """`stop_with_caller`: the container shuts down when the process that started it dies
        (tests: a killed test run leaves no container running). The command line's `up` returns
        while the container keeps running, so it leaves this off."""
        self.dir = state_dir.absolute()
        self.state_file = self.dir / "state.json"
        self.stop_with_caller = stop_with_caller

    # -- state ------------------------------------------------------------------------------

    def load(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            raise TestbedError(f"no container in {self.dir}; run `bitpoll-container up` first") from None

    def save(self, state: dict) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        os.rename(tmp, self.state_file)

    def running(self) -> bool:
        try:
            state = self.load()
        except TestbedError:
            return False
        return bool(state.get("nspawn_pid")) and pid_alive(state["nspawn_pid"])

    # -- commands inside ---------------------------------------------------------------------

    def command(self, argv: list[str], state: dict | None = None) -> list[str]:
        """`argv` run inside the container (all its namespaces) with a clean environment."""
        leader = (state or self.load())["leader_pid"]
        return [
            "nsenter",
            "--target",
            str(leader),
            "--all",
            "env",
            "-i",
            f"PATH={CONTAINER_PATH}",
            "LANG=C.UTF-8",
            "HOME=/root",
            *argv,
        ]

    def exec(
        self,
        argv: list[str],
        check: bool = True,
        timeout: float | None = 120,
        input: str | None = None,
        state: dict | None = None,
    ) -> subprocess.CompletedProcess:
        cmd = self.command(argv, state)
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
        except subprocess.TimeoutExpired:
            raise TestbedError(
                f"in the container, {shlex.join(argv)} did not finish within {timeout:.0f} s"
            ) from None
        if check and result.returncode != 0:
            raise TestbedError(
                f"in the container, {shlex.join(argv)} failed (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result

    def journal(self, unit: str, lines: int = 60) -> str:
        result = self.exec(
            ["journalctl", "--no-pager", "-o", "short-monotonic", "-n", str(lines), "-u", unit], check=False
        )
        return result.stdout

    # -- up ---------------------------------------------------------------------------------

    def up(
        self,
        layout_bin: Path | None,
        db: str = "sqlite",
        boot_timeout: float = 60,
        start_timeout: float = 120,
        render_args: list[str] | None = None,
        settings: dict | None = None,
        other_layout_bins: list[Path] | tuple = (),
        credentials: bool = False,
        switch_ports: list[int] | tuple = (),
    ) -> dict:
        """Boot a container; with `layout_bin`, install and start Bitpoll in it. `settings` are
        applied over the testbed's own (ALLOWED_HOSTS, BASE_URL and, for PostgreSQL,
        DATABASES), as the module's freeform `settings` are. `other_layout_bins` are further
        packages, installed in the store with their units rendered but not active: inside,
        `bitpoll-testbed-switch VERSION` switches to one as `nixos-rebuild switch` would.
        `credentials`: the secrets are files outside the store passed with LoadCredential= (the
        module's secretKeyFile and encryptionKeyFile) instead of generated in the state directory.
        `switch_ports`: for each port N a generation VERSION-portN of the active package that
        listens on N instead (a changed services.bitpoll.port), to switch to the same way.
        Returns the KEY=VALUE map."""
        if os.geteuid() != 0:
            raise TestbedError("the container testbed needs root (systemd-nspawn, overlay and bind mounts)")
        for tool in ("systemd-nspawn", "nsenter", "ssh-keygen", "nix-instantiate"):
            if not shutil.which(tool):
                raise TestbedError(f"{tool} not found; run ci/install.d/10-debian.sh")
        if "overlay" not in Path("/proc/filesystems").read_text():
            raise TestbedError(
                "the kernel has no overlay file system; the container needs it to keep the cached rootfs "
                "clean"
            )
        if self.running():
            raise TestbedError(f"a container is already up in {self.dir}; run `bitpoll-container down` first")
        if self.dir.exists():
            # Leftovers of a container that died or of an interrupted `up`.
            problems = self.down(quiet=True)
            if problems:
                raise TestbedError(f"cannot clean up the previous container in {self.dir}: {problems[0]}")

        layout = Layout(layout_bin) if layout_bin else None
        others = [Layout(path) for path in other_layout_bins]
        if others and not layout:
            raise TestbedError("other packages need an active one: pass --src or --layout-bin too")
        versions = [candidate.version for candidate in [layout, *others] if candidate]
        if len(set(versions)) != len(versions):
            raise TestbedError(
                f"two packages with the same version ({', '.join(versions)}); bitpoll-testbed-switch tells "
                "them apart by version"
            )
        for candidate in [layout, *others]:
            if candidate:
                candidate.ensure_readable()
        if db not in ("sqlite", "postgresql"):
            raise TestbedError(f"unknown database '{db}'; use sqlite or postgresql")
        if (db == "postgresql" or credentials) and not layout:
            raise TestbedError("a database or credentials need Bitpoll: pass --src or --layout-bin")
        if switch_ports and not layout:
            raise TestbedError("a generation on another port needs Bitpoll: pass --src or --layout-bin")
        setup = Setup(layout, others, db, render_args or [], settings or {}, credentials, list(switch_ports))
        base = rootfs.build()
        # The files made here become the container's (its root directory is the overlay's upper
        # directory): they need the usual modes whatever umask the caller runs with (a test
        # process may have set 077, which would leave "/" unreadable for the container's users).
        umask = os.umask(0o022)
        try:
            return self._up(base, setup, boot_timeout, start_timeout)
        except BaseException:
            # Stop whatever started, but keep the files (console.log, the writable layer) for
            # a look at what went wrong; the next `up` or `down` removes them.
            self.down(keep=True, quiet=True)
            raise
        finally:
            os.umask(umask)

    def _up(self, base: Path, setup: "Setup", boot_timeout: float, start_timeout: float) -> dict:
        layout, others = setup.layout, setup.others
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"bitpoll-{os.urandom(3).hex()}"
        state: dict = {"machine": name, "state_dir": str(self.dir), "rootfs": str(base)}
        state["ssh_port"] = free_port()
        if layout:
            state["http_port"] = free_port()
        self.save(state)

        root, upper, work = self.dir / "root", self.dir / "upper", self.dir / "work"
        for d in (root, upper, work):
            d.mkdir()
        run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={base},upperdir={upper},workdir={work}",
                str(root),
            ]
        )
        state["overlay"] = str(root)
        self.save(state)

        self._stage_system(root, state)
        binds: list[tuple[Path, str]] = []
        store = self.dir / "store"
        store.mkdir()
        if layout:
            for candidate in [layout, *others]:
                binds += [bind for bind in candidate.assemble(store) if bind not in binds]
            self._stage_bitpoll(root, setup, state)
        self._boot(root, store if layout else None, binds, state, boot_timeout)
        if layout:
            self._start_bitpoll(state, start_timeout)
        state["up_seconds"] = round(time.monotonic() - started, 2)
        self.save(state)
        return self.info(state)

    def _stage_system(self, root: Path, state: dict) -> None:
        """Configure the container's base system in its writable layer, before it boots."""
        (root / "etc/hostname").write_text(state["machine"] + "\n")
        ssh = self.dir / "ssh"
        ssh.mkdir(mode=0o700)
        run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"root@{state['machine']}",
                "-f",
                str(ssh / "id_ed25519"),
            ]
        )
        run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                state["machine"],
                "-f",
                str(ssh / "ssh_host_ed25519_key"),
            ]
        )
        host_pub = (ssh / "ssh_host_ed25519_key.pub").read_text().split()
        port = state["ssh_port"]
        (ssh / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        (ssh / "ssh_config").write_text(
            f"Host {state['machine']} 127.0.0.1\n"
            f"  HostName 127.0.0.1\n  Port {port}\n  User root\n"
            f"  IdentityFile {ssh / 'id_ed25519'}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {ssh / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
            f"  LogLevel ERROR\n"
        )
        etc_ssh = root / "etc/ssh"
        for suffix in ("", ".pub"):
            target = etc_ssh / f"ssh_host_ed25519_key{suffix}"
            shutil.copyfile(ssh / f"ssh_host_ed25519_key{suffix}", target)
            target.chmod(0o600 if not suffix else 0o644)
        # Only on 127.0.0.1 (the container shares the host's network), keys only.
        (etc_ssh / "sshd_config.d/bitpoll-testbed.conf").write_text(
            "# Written by ci/container/container_testbed.py: the container shares the host's network, so "
            "sshd\n"
            "# listens on 127.0.0.1 only, on the port chosen when the container was started.\n"
            f"ListenAddress 127.0.0.1:{port}\n"
            "HostKey /etc/ssh/ssh_host_ed25519_key\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UseDNS no\n"
        )
        dot_ssh = root / "root/.ssh"
        dot_ssh.mkdir(mode=0o700, exist_ok=True)
        shutil.copyfile(ssh / "id_ed25519.pub", dot_ssh / "authorized_keys")
        (dot_ssh / "authorized_keys").chmod(0o600)
        wants = root / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / "ssh.service").symlink_to("/lib/systemd/system/ssh.service")

    def _stage_bitpoll(self, root: Path, setup: "Setup", state: dict) -> None:
        """Bitpoll's settings, units, user and directories, as the NixOS module lays them out."""
        layout, others, db = setup.layout, setup.others, setup.db
        render_args = list(setup.render_args)
        port = state["http_port"]
        base_url = f"http://127.0.0.1:{port}"
        # The settings file is in the store, as the module renders it.
        settings: dict = {
            "ALLOWED_HOSTS": ["127.0.0.1", "localhost"],
            "BASE_URL": base_url,
        }
        if db == "postgresql":
            # What module/database.nix renders for database.createLocally, and the units it
            # requires (NixOS's postgresql.target: the server runs and ensure* ran).
            settings["DATABASES"] = {
                "default": {
                    "ENGINE": "django.db.backends.postgresql",
                    "NAME": "bitpoll",
                    "USER": "bitpoll",
                    "HOST": "/run/postgresql",
                    "PORT": "5432",
                }
            }
            render_args = ["--require", "postgresql.target", *render_args]
            self._stage_postgresql(root)
        settings.update(setup.settings)
        if setup.credentials:
            render_args += self._stage_credentials(root)
        settings_path = (
            f"{STORE}/{store_hash('settings', json.dumps(settings, sort_keys=True))}-bitpoll-settings.json"
        )
        (self.dir / "store" / settings_path[len(STORE) + 1 :]).write_text(
            json.dumps(settings, indent=2) + "\n"
        )
        # Every package's units, rendered with its store path, kept in the container for
        # bitpoll-testbed-switch; the active package's are installed.
        packages = root / "etc/bitpoll-testbed/packages"
        packages.mkdir(parents=True)
        generations = [(candidate.version, candidate, port) for candidate in [layout, *others]]
        generations += [(f"{layout.version}-port{other}", layout, other) for other in setup.switch_ports]
        for generation, candidate, listen_port in generations:
            units = self.dir / "units" / generation
            run(
                [
                    sys.executable,
                    str(RENDER_UNITS),
                    str(units),
                    "--package",
                    candidate.c_package,
                    "--settings-file",
                    settings_path,
                    "--state-dir",
                    SERVICE_STATE_DIR,
                    "--address",
                    "127.0.0.1",
                    "--port",
                    str(listen_port),
                    "--backup-dir",
                    BACKUP_DIR,
                    "--env",
                    f"PATH={CONTAINER_PATH}",
                    "--systemd-run",
                    "/usr/bin/systemd-run",
                    *render_args,
                ]
            )
            kept = packages / generation
            kept.mkdir()
            for unit in sorted(units.iterdir()):
                if unit.is_file() and unit.suffix in UNIT_SUFFIXES:
                    shutil.copyfile(unit, kept / unit.name)
            # The commands the module puts on PATH (environment.systemPackages): bitpoll-manage
            # and bitpoll-ops, each running the package's tool in a unit with the service's
            # sandbox.
            shutil.copytree(units / "bin", kept / "bin")
        system = root / "etc/systemd/system"
        for unit in sorted((packages / layout.version).iterdir()):
            if unit.suffix in UNIT_SUFFIXES:
                shutil.copyfile(unit, system / unit.name)
        (root / "etc/bitpoll-testbed/current").write_text(layout.version + "\n")
        tmpfiles = self.dir / "units" / layout.version / "tmpfiles.d/bitpoll.conf"
        if tmpfiles.is_file():
            shutil.copyfile(tmpfiles, root / "etc/tmpfiles.d/bitpoll.conf")
        for command in sorted((packages / layout.version / "bin").iterdir()):
            shutil.copyfile(command, root / "usr/local/bin" / command.name)
            (root / "usr/local/bin" / command.name).chmod(0o755)
        switch = root / "usr/local/sbin/bitpoll-testbed-switch"
        switch.write_text(SWITCH_SCRIPT)
        switch.chmod(0o755)
        # The service's system user, created by systemd-sysusers at boot like NixOS's
        # users.users.bitpoll (isSystemUser, own group, home in the state directory).
        (root / "etc/sysusers.d").mkdir(parents=True, exist_ok=True)
        (root / "etc/sysusers.d/bitpoll.conf").write_text(f'u bitpoll - "Bitpoll" {SERVICE_STATE_DIR}\n')
        # The host's Python links libpython by an rpath under /root, which ProtectHome= hides
        # from the service; the dynamic loader falls back to ld.so.cache, which learns the
        # interpreter's store path after boot (ldconfig needs the bind mounts in place).
        bases = sorted({candidate.c_base for candidate in [layout, *others]})
        (root / "etc/ld.so.conf.d/bitpoll-python.conf").write_text("".join(f"{base}/lib\n" for base in bases))
        state.update(
            base_url=base_url,
            package=layout.c_package,
            python=layout.c_python,
            settings_file=settings_path,
            service_state_dir=SERVICE_STATE_DIR,
            backup_dir=BACKUP_DIR,
            units=str(self.dir / "units" / layout.version),
            version=layout.version,
            packages={candidate.version: candidate.c_package for candidate in [layout, *others]},
            db=db,
            credentials=setup.credentials,
        )
        self.save(state)

    def _stage_credentials(self, root: Path) -> list[str]:
        """Secret files outside the store, readable by root only, passed to the units with
        LoadCredential= as the module does for secretKeyFile and encryptionKeyFile; returns the
        ci/render-units arguments that name them."""
        directory = root / CREDENTIALS_DIR.lstrip("/")
        directory.mkdir(parents=True, mode=0o700)
        values = {
            "secret_key": base64.urlsafe_b64encode(os.urandom(48)).decode(),
            # A Fernet key: 32 random bytes, URL-safe base64.
            "encryption_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        }
        arguments = []
        for name, value in values.items():
            path = directory / name
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
                handle.write(value + "\n")
            arguments += ["--credential", f"{name}={CREDENTIALS_DIR}/{name}"]
        return arguments

    def _stage_postgresql(self, root: Path) -> None:
        """Debian's PostgreSQL arranged like NixOS's services.postgresql with ensureDatabases and
        ensureUsers (ensureDBOwnership): a `postgresql.target` reached once the server runs and
        the role and database of the service user exist. Peer authentication on the unix socket
        (Debian's default pg_hba.conf) lets `bitpoll` in as the role `bitpoll`, without password."""
        clusters = sorted(root.glob("etc/postgresql/*/main"))
        if not clusters:
            raise TestbedError(
                "the root file system has no PostgreSQL cluster in /etc/postgresql/*/main; rebuild it "
                "(bitpoll-container build-rootfs)"
            )
        server = f"postgresql@{clusters[-1].parent.name}-main.service"
        system = root / "etc/systemd/system"
        script = root / "usr/local/lib/bitpoll-testbed/postgresql-setup"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(
            "#!/bin/sh\n"
            "# services.postgresql's ensureUsers (with ensureDBOwnership) and ensureDatabases for\n"
            "# Bitpoll, idempotent. Written by ci/container/container_testbed.py.\n"
            "set -eu\n"
            'exists() { [ "$(psql -tAc "$1")" = 1 ]; }\n'
            "exists \"SELECT 1 FROM pg_roles WHERE rolname = 'bitpoll'\" || psql -qc 'CREATE ROLE bitpoll "
            "LOGIN'\n"
            "exists \"SELECT 1 FROM pg_database WHERE datname = 'bitpoll'\" || psql -qc 'CREATE DATABASE "
            "bitpoll OWNER bitpoll'\n"
            "psql -qc 'ALTER DATABASE bitpoll OWNER TO bitpoll'\n"
        )
        script.chmod(0o755)
        (system / "postgresql-setup.service").write_text(
            "[Unit]\n"
            "Description=Create the PostgreSQL role and database of Bitpoll\n"
            f"Requires={server}\nAfter={server}\n\n"
            "[Service]\nType=oneshot\nRemainAfterExit=yes\nUser=postgres\n"
            f"ExecStart={script.relative_to(root).as_posix().join(['/', ''])}\n"
        )
        (system / "postgresql.target").write_text(
            "# Written by ci/container/container_testbed.py: as on NixOS, reached once the server\n"
            "# runs and its ensure* steps ran.\n"
            "[Unit]\nDescription=PostgreSQL server, with Bitpoll's role and database\n"
            f"Requires={server} postgresql-setup.service\nAfter={server} postgresql-setup.service\n"
        )

    def _boot(
        self, root: Path, store: Path | None, binds: list[tuple[Path, str]], state: dict, timeout: float
    ) -> None:
        cmd = [
            "systemd-nspawn",
            "--quiet",
            "--register=no",
            "--boot",
            f"--directory={root}",
            f"--machine={state['machine']}",
            "--console=read-only",
            "--link-journal=no",
            "--resolv-conf=copy-host",
            "--timezone=off",
        ]
        if not host_runs_systemd():
            cmd.insert(3, "--keep-unit")
        if store:
            cmd.append(f"--bind-ro={store}:{STORE}")
            # nspawn sorts its mounts by destination, so /nix/store is there before these land
            # on the empty directories made for them.
            cmd += [f"--bind-ro={source}:{target}" for source, target in binds]
        state["nspawn_cmd"] = cmd
        cgroups = [] if host_runs_systemd() else make_cgroups(state["machine"])
        state["cgroups"] = cgroups
        self.save(state)

        stop_with_caller = self.stop_with_caller

        def enter_cgroups() -> None:
            for directory in cgroups:
                Path(directory, "cgroup.procs").write_text("0\n")
            if stop_with_caller:
                # PR_SET_PDEATHSIG: SIGTERM, which nspawn turns into an orderly shutdown.
                ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)

        console = open(self.dir / "console.log", "wb")
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=enter_cgroups,
            cwd="/",
        )
        console.close()
        state["nspawn_pid"] = proc.pid
        self.save(state)

        deadline = time.monotonic() + timeout
        leader = None
        while leader is None:
            if proc.poll() is not None:
                raise TestbedError(
                    f"systemd-nspawn exited with {proc.returncode} while booting; see "
                    f"{self.dir / 'console.log'}:\n{self._console_tail()}"
                )
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"the container's systemd did not start within {timeout:.0f} s; see "
                    f"{self.dir / 'console.log'}"
                )
            leader = self._find_leader(proc.pid)
            if leader is None:
                time.sleep(0.05)
        state["leader_pid"] = leader
        self.save(state)

        # Until systemd has set up its private bus, systemctl cannot connect and prints nothing
        # or "offline"; --wait only waits once it is connected.
        while True:
            remaining = max(1.0, deadline - time.monotonic())
            result = self.exec(
                ["systemctl", "is-system-running", "--wait"], check=False, timeout=remaining, state=state
            )
            status = result.stdout.strip()
            if status not in ("", "offline") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if status != "running":
            failed = self.exec(
                ["systemctl", "--failed", "--no-legend", "--plain"], check=False, state=state
            ).stdout.strip()
            raise TestbedError(
                f"the container booted into state '{status}' (failed units: {failed or 'none'}); see "
                f"{self.dir / 'console.log'}"
            )
        self._wait_port(state["ssh_port"], deadline, "sshd")

    @staticmethod
    def _find_leader(nspawn_pid: int) -> int | None:
        """The container's PID 1 as seen from the host: nspawn's descendant that is pid 1 inside."""
        todo = [nspawn_pid]
        while todo:
            pid = todo.pop()
            try:
                children = []
                for task in Path(f"/proc/{pid}/task").iterdir():
                    children += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            for child in children:
                try:
                    status = Path(f"/proc/{child}/status").read_text()
                except OSError:
                    continue
                nspid = re.search(r"^NSpid:\s+(.+)$", status, re.M)
                if nspid and nspid.group(1).split()[-1] == "1" and len(nspid.group(1).split()) > 1:
                    return child
                todo.append(child)
        return None

    def _wait_port(self, port: int, deadline: float, what: str) -> None:
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise TestbedError(
                        f"{what} is not listening on 127.0.0.1:{port}; see `bitpoll-container exec "
                        "journalctl -b`"
                    ) from None
                time.sleep(0.05)

    def _start_bitpoll(self, state: dict, timeout: float) -> None:
        self.exec(["ldconfig"], state=state)
        result = self.exec(
            ["systemctl", "enable", "--now", *STARTED_UNITS], check=False, timeout=timeout, state=state
        )
        if result.returncode != 0:
            journal = self.exec(
                ["journalctl", "--no-pager", "-n", "40", "-u", "bitpoll.service"], check=False, state=state
            ).stdout
            raise TestbedError(
                f"starting {' '.join(STARTED_UNITS)} failed: {result.stderr.strip()}\njournal of "
                f"bitpoll.service:\n{journal}"
            )
        self._wait_port(state["http_port"], time.monotonic() + 10, "bitpoll.socket")

    # -- down -------------------------------------------------------------------------------

    def down(self, keep: bool = False, quiet: bool = False, timeout: float = 20) -> list[str]:
        """Stop the container and remove what `up` made. Returns the problems left, if any."""
        try:
            state = self.load()
        except TestbedError:
            state = {}
        problems: list[str] = []
        pid = state.get("nspawn_pid")
        if pid and pid_alive(pid) and self._is_our_nspawn(pid, state):
            # nspawn turns SIGTERM into an orderly shutdown of the container's systemd.
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                reap(pid)
                time.sleep(0.05)
            if pid_alive(pid):
                log(f"systemd-nspawn {pid} did not stop within {timeout:.0f} s; killing it")
                os.kill(pid, signal.SIGKILL)
                while pid_alive(pid):
                    reap(pid)
                    time.sleep(0.05)
        if pid:
            reap(pid)
        cgroups = state.get("cgroups", [])
        # Whatever still runs in this container's cgroups was started by it: nothing else
        # lives there.
        for leftover in cgroup_pids(cgroups):
            try:
                os.kill(leftover, signal.SIGKILL)
            except ProcessLookupError:
                pass
        problems += [f"cgroup not removed: {d}" for d in remove_cgroups(cgroups)]
        if self.dir.exists():
            problems += [f"mount left: {m}" for m in unmount_all(self.dir)]
        if not problems and not keep and self.dir.exists():
            shutil.rmtree(self.dir)
        if problems and not quiet:
            for problem in problems:
                log(problem)
        return problems

    @staticmethod
    def _is_our_nspawn(pid: int, state: dict) -> bool:
        """Guards against a recycled pid: the process must be systemd-nspawn on our root."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return (
            bool(cmdline)
            and cmdline[0].endswith(b"systemd-nspawn")
            and f"--machine={state.get('machine')}".encode() in cmdline
        )

    # -- info -------------------------------------------------------------------------------

    def info(self, state: dict | None = None) -> dict:
        state = state or self.load()
        ssh = self.dir / "ssh"
        values = {
            "STATE_DIR": str(self.dir),
            "MACHINE": state["machine"],
            "LEADER_PID": str(state.get("leader_pid", "")),
            "ROOT": state.get("overlay", ""),
            "SSH_TARGET": f"ssh://root@127.0.0.1:{state['ssh_port']}",
            "SSH_HOST": "127.0.0.1",
            "SSH_PORT": str(state["ssh_port"]),
            "SSH_USER": "root",
            "SSH_IDENTITY": str(ssh / "id_ed25519"),
            "SSH_KNOWN_HOSTS": str(ssh / "known_hosts"),
            "SSH_CONFIG": str(ssh / "ssh_config"),
        }
        if "base_url" in state:
            values.update(
                BASE_URL=state["base_url"],
                HTTP_PORT=str(state["http_port"]),
                PACKAGE=state["package"],
                SETTINGS_FILE=state["settings_file"],
                SERVICE_STATE_DIR=state["service_state_dir"],
                BACKUP_DIR=state["backup_dir"],
                BITPOLL_VERSION=state["version"],
                PACKAGES=",".join(f"{version}={path}" for version, path in state["packages"].items()),
            )
        if "up_seconds" in state:
            values["UP_SECONDS"] = str(state["up_seconds"])
        return values
