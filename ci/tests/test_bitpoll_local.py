"""The README's first command, ci/bitpoll-local, end to end.

Without BITPOLL_SRC and with no server to download from: one clear error and exit 2, before
anything is built or booted. With BITPOLL_SRC on the process testbed (as where systemd-nspawn
is missing): deployment and migrations run, the other scenarios are reported as skipped with
the reason, in the output and in the reports. With both checkouts (in directories whose names
carry no version) in the systemd container testbed: every scenario passes.
"""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "ci" / "bitpoll-local"


@pytest.fixture(scope="module")
def harness() -> Path:
    """The harness built as a test run builds it (bitpoll-local would build a release one)."""
    build = subprocess.run(
        ["cargo", "build", "--locked", "--quiet", "-p", "bitpoll-harness"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert build.returncode == 0, build.stderr
    return REPO / "target" / "debug" / "bitpoll-harness"


def local(*arguments: str, env: dict, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LOCAL), *arguments], cwd="/", env=env, capture_output=True, text=True, timeout=timeout
    )


def needs_root():
    if os.geteuid() != 0:
        pytest.skip("bitpoll-local installs Debian's packages as root")


def test_without_a_checkout_or_a_network_it_says_what_to_set_and_exits_2(tmp_path, harness):
    needs_root()
    env = {k: v for k, v in os.environ.items() if k not in ("BITPOLL_SRC", "BITPOLL_SRC_PREVIOUS")}
    env.update(XDG_CACHE_HOME=str(tmp_path), BITPOLL_DOWNLOAD_BASE="http://127.0.0.1:9")
    result = local("deployment", "--harness", str(harness), env=env, timeout=600)
    assert result.returncode == 2, result.stderr
    assert "cannot download Bitpoll 0.11.0 from http://127.0.0.1:9/" in result.stderr
    assert "set BITPOLL_SRC to a Bitpoll 0.11.0 checkout instead" in result.stderr
    assert not list(tmp_path.glob("bitpoll-nix/rootfs-*")), "it went on after the error"


def test_on_the_process_testbed_the_rest_is_skipped_with_the_reason(tmp_path, harness):
    needs_root()
    if not os.environ.get("BITPOLL_SRC"):
        pytest.skip("BITPOLL_SRC is not set (a Bitpoll 0.11 checkout)")
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    result = local(
        "--testbed",
        "process",
        "--harness",
        str(harness),
        "--report",
        str(report),
        "--junit",
        str(junit),
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "deployment: passed" in lines and "migrations: passed" in lines
    skipped = [line for line in lines if ": skipped: needs systemd: the process testbed runs here" in line]
    assert sorted(line.split(":")[0] for line in skipped) == [
        "backup-restore",
        "faults",
        "hardening",
        "monitoring",
        "postgresql",
        "upgrade",
    ]
    combined = json.loads(report.read_text())
    assert [s["scenario"] for s in combined["scenarios"]] == ["deployment", "migrations"]
    assert sorted(entry["scenario"] for entry in combined["not_run"]) == sorted(
        line.split(":")[0] for line in skipped
    )
    assert (
        lines[-1]
        == f"{combined['summary']['passed']} passed, 0 failed, {combined['summary']['skipped']} skipped"
    )
    suites = {suite.get("name"): suite for suite in ElementTree.parse(junit).getroot().iter("testsuite")}
    assert sorted(suites) == sorted(["deployment", "migrations", *(line.split(":")[0] for line in skipped)])
    assert suites["hardening"].find("testcase/skipped").get("message").startswith("needs systemd")


def test_every_scenario_passes_in_the_container(tmp_path, harness):
    current, previous = os.environ.get("BITPOLL_SRC"), os.environ.get("BITPOLL_SRC_PREVIOUS")
    if not current or not previous:
        pytest.skip("BITPOLL_SRC and BITPOLL_SRC_PREVIOUS must both be set (Bitpoll 0.11 and 0.10 checkouts)")
    needs_root()
    if not Path("/usr/bin/systemd-nspawn").exists():
        pytest.skip("systemd-nspawn is missing (ci/install.d/10-debian.sh installs systemd-container)")
    report = tmp_path / "report.json"
    result = local("--harness", str(harness), "--report", str(report), env=dict(os.environ))
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    combined = json.loads(report.read_text())
    assert sorted(s["scenario"] for s in combined["scenarios"]) == sorted(
        [
            "deployment",
            "migrations",
            "hardening",
            "backup-restore",
            "faults",
            "postgresql",
            "upgrade",
            "monitoring",
        ]
    )
    assert all(s["status"] == "passed" for s in combined["scenarios"]) and combined["not_run"] == []
    assert combined["summary"]["failed"] == 0 and combined["summary"]["skipped"] == 0


def test_keep_leaves_the_deployment_up_and_says_how_to_use_it(tmp_path, harness):
    needs_root()
    if not os.environ.get("BITPOLL_SRC"):
        pytest.skip("BITPOLL_SRC is not set (a Bitpoll 0.11 checkout)")
    result = local(
        "deployment", "--testbed", "process", "--keep", "--harness", str(harness), env=dict(os.environ)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line.strip() for line in result.stderr.splitlines()]
    load = next(line for line in lines if line.startswith('eval "$(') and " env --dir " in line)
    stop = next(line for line in lines if " stop --dir " in line).split("  #")[0]
    try:
        # What it printed, in a fresh shell with nothing else: the scenario runs again.
        again = subprocess.run(
            ["bash", "-c", f'set -e; {load}; cd /; exec "$HARNESS" run deployment'],
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "HARNESS": str(harness)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode == 0 and again.stdout.splitlines()[-1].endswith(
            "0 failed, 2 skipped"
        ), again.stdout
    finally:
        subprocess.run(["bash", "-c", stop], capture_output=True, timeout=120)
