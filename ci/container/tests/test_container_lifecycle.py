"""The container itself: it boots from the cached root file system without changing it, answers
over SSH on 127.0.0.1 only, and `down` leaves no process, mount, cgroup or file behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nspawn_support import container_listeners, require_host, testbed


@pytest.fixture()
def bare(tmp_path):
    require_host()
    box = testbed.Container(tmp_path / "state", stop_with_caller=True)
    info = box.up(layout_bin=None)
    yield box, info
    box.down()


def test_boots_on_an_overlay_and_leaves_nothing_behind(bare):
    box, info = bare
    state = box.load()
    rootfs = Path(state["rootfs"])
    # A file written inside lands in the writable layer, never in the cached root file system.
    box.exec(["sh", "-c", "echo dirty > /etc/bitpoll-testbed-probe"])
    assert (box.dir / "upper/etc/bitpoll-testbed-probe").is_file()
    assert not (rootfs / "etc/bitpoll-testbed-probe").exists()
    assert box.exec(["systemctl", "is-system-running"]).stdout.strip() == "running"

    # Everything the container listens on is on 127.0.0.1: here, sshd at the announced port.
    listeners = container_listeners(box)
    assert [address for address, _ in listeners] == [f"127.0.0.1:{info['SSH_PORT']}"], listeners
    result = subprocess.run(
        ["ssh", "-F", info["SSH_CONFIG"], "-o", "BatchMode=yes", "127.0.0.1", "cat", "/etc/hostname"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == info["MACHINE"]

    nspawn, leader, cgroups = state["nspawn_pid"], state["leader_pid"], state["cgroups"]
    assert testbed.pid_alive(nspawn) and testbed.pid_alive(leader)
    assert box.down() == []
    assert not testbed.pid_alive(nspawn) and not testbed.pid_alive(leader)
    # nspawn was our child: it is reaped, not left as a zombie.
    assert not os.path.exists(f"/proc/{nspawn}"), "systemd-nspawn was left as a zombie"
    assert not box.dir.exists()
    assert testbed.mounts_under(box.dir.parent) == []
    assert not any(os.path.exists(c) for c in cgroups), cgroups
    # Nothing is left running on the container's root or in its cgroups.
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            root = os.readlink(f"/proc/{pid}/root")
        except OSError:
            continue
        assert not root.startswith(str(box.dir)), f"process {pid} still runs in the container's root"


def test_a_second_up_on_the_same_state_dir_is_refused(bare):
    box, _ = bare
    with pytest.raises(testbed.TestbedError, match="already up"):
        box.up(layout_bin=None)
