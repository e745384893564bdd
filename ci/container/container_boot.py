"""Booting a container: systemd-nspawn in cgroups of its own (the host has no systemd), its
PID 1 found from the host, and the wait until systemd runs and sshd listens."""

from __future__ import annotations

import ctypes
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from container_common import STORE, TestbedError
from container_host import host_runs_systemd, make_cgroups


def console_tail(path: Path, lines: int = 20) -> str:
    """The end of the container's console log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(no console log: {error.strerror})"


def boot(
    container, root: Path, store: Path | None, binds: list[tuple[Path, str]], state: dict, timeout: float
) -> None:
    """Start systemd-nspawn on `root` in cgroups of its own and wait until the container's
    systemd is running and its sshd listens."""
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
    container.save(state)

    stop_with_caller = container.stop_with_caller

    def enter_cgroups() -> None:
        for directory in cgroups:
            Path(directory, "cgroup.procs").write_text("0\n")
        if stop_with_caller:
            # PR_SET_PDEATHSIG: SIGTERM, which nspawn turns into an orderly shutdown.
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)

    console = open(container.dir / "console.log", "wb")
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
    container.save(state)

    deadline = time.monotonic() + timeout
    leader = None
    while leader is None:
        if proc.poll() is not None:
            raise TestbedError(
                f"systemd-nspawn exited with {proc.returncode} while booting; see "
                f"{container.dir / 'console.log'}:\n{console_tail(container.dir / 'console.log')}"
            )
        if time.monotonic() > deadline:
            raise TestbedError(
                f"the container's systemd did not start within {timeout:.0f} s; see "
                f"{container.dir / 'console.log'}"
            )
        leader = find_leader(proc.pid)
        if leader is None:
            time.sleep(0.05)
    state["leader_pid"] = leader
    container.save(state)

    # Until systemd has set up its private bus, systemctl cannot connect and prints nothing
    # or "offline"; --wait only waits once it is connected.
    while True:
        remaining = max(1.0, deadline - time.monotonic())
        result = container.exec(
            ["systemctl", "is-system-running", "--wait"], check=False, timeout=remaining, state=state
        )
        status = result.stdout.strip()
        if status not in ("", "offline") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if status != "running":
        failed = container.exec(
            ["systemctl", "--failed", "--no-legend", "--plain"], check=False, state=state
        ).stdout.strip()
        raise TestbedError(
            f"the container booted into state '{status}' (failed units: {failed or 'none'}); see "
            f"{container.dir / 'console.log'}"
        )
    wait_port(state["ssh_port"], deadline, "sshd")


def find_leader(nspawn_pid: int) -> int | None:
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


def wait_port(port: int, deadline: float, what: str) -> None:
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
