"""Bitpoll under a real systemd, with the units that module/units.nix describes.

The container (see conftest.py) runs bitpoll.socket, bitpoll.service and the backup and
clearsessions timers exactly as ci/render-units renders them, with the full sandbox, the package
read-only at a /nix/store path and a `bitpoll` system user. These tests prove the sandbox holds
and that Bitpoll works inside it.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from nspawn_support import (
    container_listeners,
    create_poll,
    journal,
    require_host,
    requests_across,
    sh,
    show,
    testbed,
)


@pytest.fixture(scope="session")
def bitpoll_src() -> Path:
    src = os.environ.get("BITPOLL_SRC")
    if not src:
        pytest.skip(
            "BITPOLL_SRC is not set (a Bitpoll 0.11 checkout is needed to run Bitpoll in the container)"
        )
    return Path(src)


@pytest.fixture(scope="session")
def container(bitpoll_src, tmp_path_factory):
    """One booted container with Bitpoll started by systemd from the module's rendered units,
    shared by the whole session (about 4 s to boot it and start Bitpoll)."""
    require_host()
    layout_bin = testbed.prepare_layout(bitpoll_src)
    box = testbed.Container(tmp_path_factory.mktemp("container") / "state", stop_with_caller=True)
    info = box.up(layout_bin)
    print(f"\ncontainer up in {info.get('UP_SECONDS')} s: {info['BASE_URL']} {info['SSH_TARGET']}")
    box.info_values = info
    yield box
    problems = box.down()
    assert not problems, f"the container left: {problems}"


def test_service_runs_under_the_full_sandbox(container):
    props = show(
        container,
        "bitpoll.service",
        "ActiveState",
        "SubState",
        "MainPID",
        "FragmentPath",
        "ProtectSystem",
        "ProtectHome",
        "PrivateUsers",
        "PrivateNetwork",
        "MemoryDenyWriteExecute",
        "NoNewPrivileges",
        "User",
        "TriggeredBy",
    )
    assert props["ActiveState"] == "active" and props["SubState"] == "running", props | {
        "journal": journal(container)
    }
    assert props["FragmentPath"] == "/etc/systemd/system/bitpoll.service"
    assert (
        props["ProtectSystem"],
        props["ProtectHome"],
        props["PrivateUsers"],
        props["PrivateNetwork"],
        props["MemoryDenyWriteExecute"],
        props["NoNewPrivileges"],
    ) == ("strict", "yes", "yes", "yes", "yes", "yes")
    assert props["User"] == "bitpoll"
    assert "bitpoll.socket" in props["TriggeredBy"]
    # The kernel's view of the main process (gunicorn's master), not just systemd's settings.
    pid = props["MainPID"]
    status = sh(container, "cat", f"/proc/{pid}/status").stdout
    fields = dict(re.findall(r"^(\w+):\s*(.*)$", status, re.M))
    print(
        f"\nbitpoll.service main process {pid}: Uid {fields['Uid']}, CapEff {fields['CapEff']}, Seccomp "
        f"{fields['Seccomp']}, NoNewPrivs {fields['NoNewPrivs']}"
    )
    assert fields["CapEff"] == "0000000000000000"
    assert fields["Seccomp"] == "2", "no seccomp filter on the service"
    assert fields["NoNewPrivs"] == "1"
    uid = sh(container, "id", "-u", "bitpoll").stdout.strip()
    assert fields["Uid"].split()[0] == uid
    # PrivateUsers=: the service lives in its own user namespace, mapping only root and itself.
    uid_map = sh(container, "cat", f"/proc/{pid}/uid_map").stdout.split()
    assert len(uid_map) == 6 and uid in uid_map, f"uid_map of the service: {uid_map}"
    # The package is at its store path, as on NixOS.
    cmdline = sh(container, "cat", f"/proc/{pid}/cmdline").stdout.replace("\0", " ")
    assert "gunicorn" in cmdline and "/nix/store/" in cmdline


def test_serves_a_poll_through_the_web_forms(container):
    slug = f"container-{int(time.time() * 1000)}"
    browser = create_poll(container.info_values["BASE_URL"], slug, "Container poll")
    status, _, body = browser.request(f"/poll/{slug}/")
    assert status == 200 and "Container poll" in body and "Coffee" in body
    form = browser.form(f"/poll/{slug}/vote/")
    assert len(form.radios) == 2, f"radio groups on the vote form: {form.radios}"
    # The form's comment field must be sent (empty): without it Bitpoll's vote fails on the
    # database's NOT NULL constraint and shows the form again.
    vote = {"csrfmiddlewaretoken": form.csrf, "name": "Nspawn Voter", "comment": ""}
    vote.update({choice: values[0] for choice, values in form.radios.items()})
    status, _, body = browser.request(f"/poll/{slug}/vote/", vote)
    assert status == 302, f"voting: {status} {body[:500]}"
    status, _, csv = browser.request(f"/poll/{slug}.csv")
    assert status == 200 and "Nspawn Voter" in csv
    # Static files come from the read-only package (whitenoise serves the collected files).
    page = browser.request("/")[2]
    static = re.search(r'(?:href|src)="(/static/[^"]+\.(?:css|js))"', page)
    assert static, "no static asset linked from the start page"
    assert browser.request(static.group(1))[0] == 200


def test_security_score_read_online(container):
    out = sh(container, "systemd-analyze", "security", "--no-pager", "bitpoll.service").stdout
    match = re.search(r"Overall exposure level for bitpoll\.service: (\d+\.\d+) (\S+)", out)
    assert match, out[-2000:]
    score = float(match.group(1))
    print(f"\nsystemd-analyze security bitpoll.service (online, in the container): {score} {match.group(2)}")
    # Lines systemd counts against the service, for whoever tunes the budget.
    for line in out.splitlines():
        if line.startswith("✗"):
            print("  " + line)
    assert score <= 1.0, f"exposure {score} is above the budget of 1.0:\n{out}"
    # The housekeeping services share the sandbox; their scores are shown, not budgeted here.
    for unit in ("bitpoll-backup.service", "bitpoll-clearsessions.service"):
        last = (
            sh(container, "systemd-analyze", "security", "--no-pager", unit).stdout.strip().splitlines()[-1]
        )
        print(f"  {last.lstrip('→ ')}")


def test_units_pass_systemd_analyze_verify(container):
    """The rendered units as this systemd (252) reads them: no unknown directive, no bad value."""
    listing = "cd /etc/systemd/system && ls -d $PWD/bitpoll*.service $PWD/bitpoll*.socket $PWD/bitpoll*.timer"
    units = sh(container, "sh", "-c", listing).stdout.split()
    assert len(units) == 6, units
    result = sh(container, "systemd-analyze", "verify", *units, check=False)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


PROBE = r"""
import os, sys
results = {}
def attempt(name, action):
    try:
        action()
        results[name] = "ok"
    except OSError as exc:
        results[name] = type(exc).__name__ + ":" + os.strerror(exc.errno)
attempt("write_etc", lambda: open("/etc/bitpoll-probe", "w").close())
attempt("write_world_writable", lambda: open("/srv/open/bitpoll-probe", "w").close())
attempt("write_package", lambda: open(sys.argv[1] + "/bitpoll-probe", "w").close())
attempt("list_home", lambda: os.listdir("/home"))
attempt("read_home_secret", lambda: open("/home/alice/secret").read())
attempt("write_state", lambda: (open(sys.argv[2] + "/probe", "w").close(), os.unlink(sys.argv[2] + "/probe")))
print(repr(results))
"""


def check_probe(output, where):
    results = ast.literal_eval(output.strip().splitlines()[-1])
    print(f"\n{where}: {results}")
    # EROFS, not EACCES: the file system is read-only for the service (ProtectSystem=strict),
    # even where the permissions would let it write (/srv/open is mode 1777).
    assert results["write_etc"] == "OSError:Read-only file system", results
    assert results["write_world_writable"] == "OSError:Read-only file system", results
    assert results["write_package"] == "OSError:Read-only file system", results
    assert results["list_home"] != "ok" and results["read_home_secret"] != "ok", results
    # The control: the same probe can write where the service may, so the denials above are
    # the sandbox's doing and not a broken probe.
    assert results["write_state"] == "ok", results


@pytest.fixture(scope="module")
def home_secret(container):
    """A world-readable file in /home and a world-writable directory outside the state: what
    only the sandbox keeps the service from."""
    sh(
        container,
        "sh",
        "-c",
        "mkdir -p /home/alice /srv/open && chmod 1777 /srv/open && echo hunter2 > /home/alice/secret && "
        "chmod 755 /home/alice && chmod 644 /home/alice/secret",
    )
    return "/home/alice/secret"


def test_service_namespace_cannot_write_etc_or_package_nor_see_home(container, home_secret):
    """Inside the running service's own mount namespace, with its user and groups."""
    info = container.info_values
    pid = show(container, "bitpoll.service", "MainPID")["MainPID"]
    uid = sh(container, "id", "-u", "bitpoll").stdout.strip()
    gid = sh(container, "id", "-g", "bitpoll").stdout.strip()
    python = container.load()["python"]
    result = sh(
        container,
        "nsenter",
        f"--target={pid}",
        "--mount",
        f"--setuid={uid}",
        f"--setgid={gid}",
        "--",
        python,
        "-c",
        PROBE,
        info["PACKAGE"],
        info["SERVICE_STATE_DIR"],
        check=False,
    )
    assert result.returncode == 0, result.stderr
    check_probe(result.stdout, f"in the mount namespace of bitpoll.service (pid {pid})")


def test_bitpoll_manage_runs_as_the_service(container, home_secret):
    """`bitpoll-manage` (the module's wrapper on PATH) runs manage.py with the service's sandbox."""
    info = container.info_values
    code = PROBE.replace("sys.argv[1]", repr(info["PACKAGE"])).replace(
        "sys.argv[2]", repr(info["SERVICE_STATE_DIR"])
    )
    result = sh(container, "bitpoll-manage", "shell", "-c", code, check=False)
    assert result.returncode == 0, result.stderr + journal(container)
    check_probe(result.stdout, "bitpoll-manage shell")
    # Django's shell may print a line about its automatic imports first; ours is the last.
    who = (
        sh(
            container,
            "bitpoll-manage",
            "shell",
            "-c",
            "import os, django.conf; print(os.getuid(), django.conf.settings.BASE_URL)",
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert who.split() == [sh(container, "id", "-u", "bitpoll").stdout.strip(), info["BASE_URL"]]


KERNEL_PROBE = r"""
import mmap, os
results = {}
def attempt(name, action):
    try:
        action()
        results[name] = "ok"
    except OSError as exc:
        results[name] = type(exc).__name__ + ":" + os.strerror(exc.errno)
attempt("map_rw", lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE).close())
attempt("map_wx", lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC).close())
attempt("lower_priority", lambda: os.setpriority(os.PRIO_PROCESS, 0, 19))
print(repr(results))
"""


def test_memory_and_system_call_restrictions_hold_for_bitpoll_code(container):
    """Bitpoll's own interpreter, in the service's sandbox (`bitpoll-manage`): a writable and
    executable mapping is refused (MemoryDenyWriteExecute=), and so is a call from the
    @resources group (SystemCallFilter=~@resources), while an ordinary mapping works."""
    result = sh(container, "bitpoll-manage", "shell", "-c", KERNEL_PROBE, check=False)
    assert result.returncode == 0, result.stderr + journal(container)
    results = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    print(f"\nin the service's sandbox: {results}")
    assert results["map_rw"] == "ok", results
    assert results["map_wx"] == "PermissionError:Operation not permitted", results
    # Raising one's own niceness needs no privilege: only the filter can refuse it.
    assert results["lower_priority"] == "PermissionError:Operation not permitted", results
    # The control: the same probe as root outside the sandbox may do both.
    python = container.load()["python"]
    free = ast.literal_eval(sh(container, python, "-c", KERNEL_PROBE).stdout.strip().splitlines()[-1])
    assert free == {"map_rw": "ok", "map_wx": "ok", "lower_priority": "ok"}, free


def test_restart_through_the_socket_refuses_no_request(container):
    """Socket activation: the listening socket stays with systemd, so connections made while no
    server runs wait in its backlog for the next one instead of being refused."""
    before = show(container, "bitpoll.service", "MainPID")["MainPID"]
    load = requests_across(container, container.command(["systemctl", "restart", "bitpoll.service"]))
    assert load.returncode == 0, load.stderr + journal(container)
    assert show(container, "bitpoll.service", "MainPID")["MainPID"] != before, "the service was not restarted"
    load.check()


def test_backup_timer_service_leaves_a_verified_archive(container):
    timer = show(container, "bitpoll-backup.timer", "ActiveState", "NextElapseUSecRealtime", "Unit")
    assert timer["ActiveState"] == "active", timer
    assert timer["NextElapseUSecRealtime"], f"the backup timer has no next elapse: {timer}"
    assert timer["Unit"] == "bitpoll-backup.service"
    backup_dir = container.info_values["BACKUP_DIR"]
    listing = "ls -1 {0} 2>/dev/null | grep -c . || true".format(backup_dir)
    count_before = int(sh(container, "sh", "-c", listing).stdout.strip() or 0)
    started = sh(container, "systemctl", "start", timer["Unit"], check=False, timeout=300)
    result = show(container, timer["Unit"], "Result", "ExecMainStatus")
    assert started.returncode == 0 and result["Result"] == "success", f"{result} {started.stderr}" + journal(
        container, timer["Unit"]
    )
    archives = sh(container, "sh", "-c", f"ls -1t {backup_dir}/*.tar.gz").stdout.split()
    assert len(archives) == count_before + 1, archives
    archive = archives[0]
    mode_owner = sh(container, "stat", "-c", "%a %U", archive).stdout.split()
    assert mode_owner == ["600", "bitpoll"], mode_owner
    ops = container.info_values["PACKAGE"] + "/bin/bitpoll-ops"
    verified = sh(container, ops, "verify", archive, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    print("\n" + verified.stdout.strip())
    # The same through the command the module puts on PATH, in the service's sandbox.
    sandboxed = sh(container, "bitpoll-ops", "verify", archive, check=False)
    assert sandboxed.returncode == 0 and "is intact" in sandboxed.stdout, sandboxed.stdout + sandboxed.stderr
    # The control: a damaged copy is rejected, so "verified" above means something.
    damaged = "/root/damaged.tar.gz"
    sh(container, "sh", "-c", f"head -c $(( $(stat -c %s {archive}) - 40 )) {archive} > {damaged}")
    rejected = sh(container, ops, "verify", damaged, check=False)
    assert rejected.returncode != 0, rejected.stdout


def test_clearsessions_service_runs(container):
    timer = show(container, "bitpoll-clearsessions.timer", "ActiveState", "NextElapseUSecRealtime")
    assert timer["ActiveState"] == "active" and timer["NextElapseUSecRealtime"], timer
    started = sh(container, "systemctl", "start", "bitpoll-clearsessions.service", check=False, timeout=300)
    result = show(container, "bitpoll-clearsessions.service", "Result")
    assert started.returncode == 0 and result["Result"] == "success", str(result) + journal(
        container, "bitpoll-clearsessions.service"
    )


def test_the_container_listens_on_127_0_0_1_only(container):
    """The container shares the host's network: sshd and bitpoll.socket, nothing else, and only
    on 127.0.0.1 at the announced ports."""
    info = container.info_values
    addresses = sorted(address for address, _ in container_listeners(container))
    assert addresses == sorted([f"127.0.0.1:{info['SSH_PORT']}", f"127.0.0.1:{info['HTTP_PORT']}"]), addresses


def test_ssh_target_reaches_the_container(container):
    info = container.info_values
    result = subprocess.run(
        [
            "ssh",
            "-F",
            info["SSH_CONFIG"],
            "-o",
            "BatchMode=yes",
            "127.0.0.1",
            "systemctl",
            "is-active",
            "bitpoll.socket",
            "bitpoll.service",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["active", "active"]
    assert info["SSH_TARGET"] == f"ssh://root@127.0.0.1:{info['SSH_PORT']}"
