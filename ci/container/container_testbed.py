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

The parts, by concern: container_common.py (paths, the error, small helpers), container_layout.py
(Bitpoll's layout and its /nix/store mounts), container_staging.py (what the container holds before
it boots), container_boot.py (systemd-nspawn and the wait for systemd), container_host.py (cgroups
and mounts on the host), bitpoll-testbed-switch (the switch command installed inside), and this
file, the Container that puts them together.

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

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import container_rootfs as rootfs
from container_common import (
    CONTAINER_PATH,
    CREDENTIALS_DIR,
    DEFAULT_STATE_DIR,
    REPO,
    STARTED_UNITS,
    TestbedError,
    free_port,
    log,
    pid_alive,
    reap,
    run,
)
from container_host import (
    is_our_nspawn,
    cgroup_mounts,
    cgroup_pids,
    host_runs_systemd,
    mounts_under,
    remove_cgroups,
    unmount_all,
)
from container_boot import boot, wait_port
from container_layout import Layout, prepare_layout
from container_staging import Setup, stage_bitpoll, stage_system

# The testbed's interface, for bitpoll-container, ci/bitpoll-local and the tests: the container,
# its error, and the helpers they use from the modules it is made of.
__all__ = [
    "CREDENTIALS_DIR",
    "DEFAULT_STATE_DIR",
    "REPO",
    "Container",
    "Layout",
    "TestbedError",
    "cgroup_mounts",
    "free_port",
    "host_runs_systemd",
    "mounts_under",
    "pid_alive",
    "prepare_layout",
]


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
        metrics: bool = False,
        switch_metrics: bool = False,
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
        `metrics`: Prometheus metrics on (services.bitpoll.metrics.enable), their socket
        bitpoll-metrics.socket on 127.0.0.1 at a free port (METRICS_URL). `switch_metrics`: a
        generation VERSION-metrics of the active package with metrics on at another free port
        (SWITCH_METRICS_PORT), to switch to the same way.
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
        if (metrics or switch_metrics) and not layout:
            raise TestbedError("metrics need Bitpoll: pass --src or --layout-bin")
        setup = Setup(layout, others, db, render_args or [], settings or {}, credentials, list(switch_ports))
        setup.metrics, setup.switch_metrics = metrics, switch_metrics
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
        for key, wanted in (("metrics_port", setup.metrics), ("switch_metrics_port", setup.switch_metrics)):
            if wanted:
                state[key] = free_port()
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

        stage_system(self, root, state)
        binds: list[tuple[Path, str]] = []
        store = self.dir / "store"
        store.mkdir()
        if layout:
            for candidate in [layout, *others]:
                binds += [bind for bind in candidate.assemble(store) if bind not in binds]
            stage_bitpoll(self, root, setup, state)
        boot(self, root, store if layout else None, binds, state, boot_timeout)
        if layout:
            self._start_bitpoll(state, start_timeout)
        state["up_seconds"] = round(time.monotonic() - started, 2)
        self.save(state)
        return self.info(state)

    def _start_bitpoll(self, state: dict, timeout: float) -> None:
        self.exec(["ldconfig"], state=state)
        units = [*STARTED_UNITS, *(["bitpoll-metrics.socket"] if "metrics_port" in state else [])]
        result = self.exec(
            ["systemctl", "enable", "--now", *units], check=False, timeout=timeout, state=state
        )
        if result.returncode != 0:
            journal = self.exec(
                ["journalctl", "--no-pager", "-n", "40", "-u", "bitpoll.service"], check=False, state=state
            ).stdout
            raise TestbedError(
                f"starting {' '.join(units)} failed: {result.stderr.strip()}\njournal of "
                f"bitpoll.service:\n{journal}"
            )
        wait_port(state["http_port"], time.monotonic() + 10, "bitpoll.socket")
        if "metrics_port" in state:
            wait_port(state["metrics_port"], time.monotonic() + 10, "bitpoll-metrics.socket")

    # -- down -------------------------------------------------------------------------------

    def down(self, keep: bool = False, quiet: bool = False, timeout: float = 20) -> list[str]:
        """Stop the container and remove what `up` made. Returns the problems left, if any."""
        try:
            state = self.load()
        except TestbedError:
            state = {}
        problems: list[str] = []
        pid = state.get("nspawn_pid")
        if pid and pid_alive(pid) and is_our_nspawn(pid, state.get("machine")):
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
        if "metrics_port" in state:
            values.update(METRICS_URL=f"http://127.0.0.1:{state['metrics_port']}/metrics")
        for key in ("metrics_port", "switch_metrics_port"):
            if key in state:
                values[key.upper()] = str(state[key])
        if "up_seconds" in state:
            values["UP_SECONDS"] = str(state["up_seconds"])
        return values
