"""Prometheus metrics turned on and off by a switch, as `nixos-rebuild switch` would.

Bitpoll runs without metrics; `bitpoll-testbed-switch VERSION-metrics` switches to the same
package with services.bitpoll.metrics.enable (module/listen.nix: a second socket, bound with
bitpoll.socket to a listen target whose name covers both, so the switch stops the old target and
starts the new one with both sockets). Afterwards gunicorn's master serves the metrics on the
socket systemd passed, under the unchanged sandbox; switching back removes them again. The
monitoring scenario (scenarios/monitoring.toml) checks the counts themselves.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.request
from pathlib import Path

import pytest

from nspawn_support import container_listeners, journal, require_host, sh, show, testbed


@pytest.fixture(scope="module")
def metrics_container(tmp_path_factory):
    src = os.environ.get("BITPOLL_SRC")
    if not src:
        pytest.skip(
            "BITPOLL_SRC is not set (a Bitpoll 0.11 checkout is needed to run Bitpoll in the container)"
        )
    require_host()
    box = testbed.Container(tmp_path_factory.mktemp("metrics-container") / "state", stop_with_caller=True)
    box.info_values = box.up(testbed.prepare_layout(Path(src)), switch_metrics=True)
    yield box
    problems = box.down()
    assert not problems, f"the container left: {problems}"


def refused(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(5)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def environment(box) -> str:
    return show(box, "bitpoll.service", "Environment")["Environment"]


def switch(box, generation):
    result = sh(box, "bitpoll-testbed-switch", generation, check=False)
    assert result.returncode == 0, result.stdout + result.stderr + journal(box)
    return result.stdout


def fetch(box, url) -> tuple[int, str]:
    """GET url; on failure the service's journal says why (a master that cannot serve the
    metrics socket stops, and systemd keeps restarting it)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read().decode()
    except OSError as error:
        raise AssertionError(f"GET {url}: {error}" + journal(box)) from None


def exposure(box) -> float:
    out = sh(box, "systemd-analyze", "security", "--no-pager", "bitpoll.service").stdout
    match = re.search(r"Overall exposure level for bitpoll\.service: (\d+\.\d+)", out)
    assert match, out[-2000:]
    return float(match.group(1))


def test_metrics_on_by_a_switch_and_off_again(metrics_container):
    box = metrics_container
    info = box.info_values
    port = int(info["SWITCH_METRICS_PORT"])
    assert "METRICS_URL" not in info
    # Off: no socket, no environment, no directory.
    assert show(box, "bitpoll-metrics.socket", "LoadState")["LoadState"] == "not-found"
    assert "BITPOLL_METRICS_LISTEN" not in environment(box)
    assert refused(port)
    score_off = exposure(box)

    out = switch(box, f"{info['BITPOLL_VERSION']}-metrics")
    assert "removed: bitpoll-listen-" in out, out
    socket_unit = show(box, "bitpoll-metrics.socket", "ActiveState", "Listen", "FileDescriptorName")
    assert socket_unit["ActiveState"] == "active", socket_unit
    assert (
        socket_unit["Listen"] == f"127.0.0.1:{port} (Stream)"
        and socket_unit["FileDescriptorName"] == "metrics"
    )
    assert f"BITPOLL_METRICS_LISTEN=127.0.0.1:{port}" in environment(box)
    assert fetch(box, info["BASE_URL"] + "/")[0] == 200
    status, body = fetch(box, f"http://127.0.0.1:{port}/metrics")
    assert status == 200, body
    assert re.search(
        r'(?m)^bitpoll_http_requests_total\{method="GET",status="200",view="index"\} [1-9]', body
    ), body
    assert 'bitpoll_info{version="' in body
    # The master serves the socket it was given: the sandbox stays as it was.
    sandbox = show(box, "bitpoll.service", "PrivateNetwork", "RestrictAddressFamilies", "IPAddressDeny")
    assert sandbox["PrivateNetwork"] == "yes" and sandbox["RestrictAddressFamilies"] == "AF_UNIX", sandbox
    score_on = exposure(box)
    print(
        f"\nsystemd-analyze security bitpoll.service (online): {score_off} without metrics, {score_on} with"
    )
    assert score_on <= score_off
    directory = sh(box, "stat", "--format", "%a %U", "/run/bitpoll-metrics").stdout.strip()
    assert directory == "700 bitpoll", directory
    # Three listeners, all on loopback: sshd, bitpoll.socket and bitpoll-metrics.socket.
    listeners = [address for address, _ in container_listeners(box)]
    assert len(listeners) == 3 and all(address.startswith("127.0.0.1:") for address in listeners), listeners
    assert f"127.0.0.1:{port}" in listeners

    out = switch(box, info["BITPOLL_VERSION"])
    assert "bitpoll-metrics.socket" in out, out
    assert show(box, "bitpoll-metrics.socket", "LoadState")["LoadState"] == "not-found"
    assert refused(port), f"port {port} still accepts connections after metrics were turned off"
    assert "BITPOLL_METRICS_LISTEN" not in environment(box)
    assert sh(box, "test", "-e", "/run/bitpoll-metrics", check=False).returncode == 1
    assert fetch(box, info["BASE_URL"] + "/")[0] == 200
