"""A listen change applied by a switch, as `nixos-rebuild switch` applies it.

switch-to-configuration leaves a changed socket unit alone, so the module binds bitpoll.socket
to a target named after the listen address (module/units.nix). `bitpoll-testbed-switch` models
switch-to-configuration's rule (stop what disappeared, restart changed services, start the
active targets again); after switching to a generation on another port, that port serves and
the old one refuses connections, with no reboot and nothing started by hand.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from pathlib import Path

import pytest

from nspawn_support import journal, require_host, sh, show, testbed


@pytest.fixture(scope="module")
def listen_container(tmp_path_factory):
    src = os.environ.get("BITPOLL_SRC")
    if not src:
        pytest.skip(
            "BITPOLL_SRC is not set (a Bitpoll 0.11 checkout is needed to run Bitpoll in the container)"
        )
    require_host()
    new_port = testbed.free_port()
    box = testbed.Container(tmp_path_factory.mktemp("listen-container") / "state", stop_with_caller=True)
    box.info_values = box.up(testbed.prepare_layout(Path(src)), switch_ports=[new_port])
    box.new_port = new_port
    yield box
    problems = box.down()
    assert not problems, f"the container left: {problems}"


def refused(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(5)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_a_port_change_is_served_on_the_new_port_after_the_switch(listen_container):
    box = listen_container
    info = box.info_values
    old_port = int(info["HTTP_PORT"])
    assert urllib.request.urlopen(info["BASE_URL"] + "/", timeout=30).status == 200
    old_target = [
        line
        for line in sh(
            box, "systemctl", "list-units", "--plain", "--no-legend", "bitpoll-listen-*"
        ).stdout.splitlines()
        if line.strip()
    ]
    assert len(old_target) == 1, old_target

    generation = f"{info['BITPOLL_VERSION']}-port{box.new_port}"
    switched = sh(box, "bitpoll-testbed-switch", generation, check=False)
    assert switched.returncode == 0, switched.stdout + switched.stderr + journal(box)
    assert (
        "bitpoll.socket" in switched.stdout and "removed: bitpoll-listen-" in switched.stdout
    ), switched.stdout

    listen = show(box, "bitpoll.socket", "Listen", "ActiveState")
    assert listen["ActiveState"] == "active" and f"127.0.0.1:{box.new_port}" in listen["Listen"], listen
    page = urllib.request.urlopen(f"http://127.0.0.1:{box.new_port}/", timeout=60)
    assert page.status == 200
    assert refused(old_port), f"port {old_port} still accepts connections after the switch"
    # The old listen target is gone, the new one runs.
    targets = sh(box, "systemctl", "list-units", "--plain", "--no-legend", "bitpoll-listen-*").stdout
    assert old_target[0].split()[0] not in targets and "bitpoll-listen-" in targets, targets


def test_the_rule_leaves_a_changed_socket_alone_without_the_listen_target(listen_container):
    """The model's premise, checked on the same systemd: a socket unit whose file changed but
    that nothing stops keeps listening where it did after a daemon-reload."""
    box = listen_container
    other_port = testbed.free_port()
    unit = "/etc/systemd/system/bitpoll.socket"
    text = sh(box, "cat", unit).stdout
    changed = text.replace(f":{box.new_port}", f":{other_port}")
    assert changed != text
    try:
        sh(box, "sh", "-c", f"cat > {unit}.new <<'EOF'\n{changed}EOF\nmv {unit}.new {unit}")
        sh(box, "systemctl", "daemon-reload")
        assert not refused(box.new_port) and refused(other_port)
    finally:
        sh(box, "sh", "-c", f"cat > {unit}.new <<'EOF'\n{text}EOF\nmv {unit}.new {unit}")
        sh(box, "systemctl", "daemon-reload")
