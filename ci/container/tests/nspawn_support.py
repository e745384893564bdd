"""What the container tests share: whether this host can run systemd-nspawn, and the testbed.

Deliberately not a conftest.py: other test directories import their own `conftest` by name, and
pytest keeps only one module of that name, so a second one would shadow theirs.
"""

from __future__ import annotations

import html.parser
import http.cookiejar
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import container_testbed as testbed  # noqa: E402

__all__ = [
    "Browser",
    "container_listeners",
    "create_poll",
    "host_problem",
    "journal",
    "require_host",
    "requests_across",
    "sh",
    "show",
    "testbed",
]


def host_problem() -> str | None:
    """Why this host cannot run the container testbed, or None when it can."""
    if os.geteuid() != 0:
        return "the systemd container testbed needs root (systemd-nspawn, mounts)"
    for tool in ("systemd-nspawn", "debootstrap", "nsenter", "ssh-keygen", "ssh", "nix-instantiate"):
        if not shutil.which(tool):
            return f"{tool} not found (ci/install.d/10-debian.sh installs it)"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlay file system"
    if not testbed.cgroup_mounts() and not testbed.host_runs_systemd():
        return "no cgroup hierarchy for systemd-nspawn to use"
    return None


def require_host() -> None:
    problem = host_problem()
    if problem:
        pytest.skip(f"cannot run systemd-nspawn here: {problem}")


# -- commands in the container --------------------------------------------------------------


def sh(container, *argv, check=True, timeout=120):
    return container.exec(list(argv), check=check, timeout=timeout)


def show(container, unit, *properties):
    out = sh(container, "systemctl", "show", unit, *(f"--property={p}" for p in properties)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def journal(container, unit="bitpoll.service"):
    return "\n--- journal of " + unit + " ---\n" + container.journal(unit)


# -- HTTP: a cookie jar and the CSRF token of each form, as a browser does -------------------


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class FormParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.csrf = None
        self.radios: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag != "input":
            return
        if attrs.get("name") == "csrfmiddlewaretoken":
            self.csrf = attrs.get("value")
        if attrs.get("type") == "radio" and attrs.get("name", "").isdigit():
            self.radios.setdefault(attrs["name"], []).append(attrs.get("value"))


class Browser:
    def __init__(self, base_url):
        self.base = base_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect()
        )

    def request(self, path, data=None, timeout=30):
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, headers={"Referer": self.base + path})
        try:
            with self.opener.open(req, timeout=timeout) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode(errors="replace")

    def form(self, path):
        status, _, text = self.request(path)
        assert status == 200, f"GET {path}: {status}"
        parser = FormParser()
        parser.feed(text)
        assert parser.csrf, f"GET {path}: no csrfmiddlewaretoken in the form"
        return parser


def create_poll(base_url, slug, title, choices=("Tea", "Coffee")):
    """Create a universal poll with `choices` through the web forms; return the Browser."""
    browser = Browser(base_url)
    form = browser.form("/")
    status, headers, body = browser.request(
        "/", {"csrfmiddlewaretoken": form.csrf, "title": title, "type": "universal", "url": slug}
    )
    assert status == 302, f"creating the poll: {status} {body[:500]}"
    assert f"/poll/{slug}/edit/choices/universal" in headers["Location"]
    form = browser.form(f"/poll/{slug}/edit/choices/universal/")
    # "next" is the name of the form's submit button; without it the editor shows itself again.
    fields = {
        "csrfmiddlewaretoken": form.csrf,
        "choice_text": list(choices),
        "choice_sort_key": [str(i + 1) for i in range(len(choices))],
        "next": "",
    }
    status, _, body = browser.request(f"/poll/{slug}/edit/choices/universal/", fields)
    assert status == 302, f"adding choices: {status} {body[:500]}"
    return browser


def fetch(url: str) -> tuple[float, float, int | str]:
    """(sent, answered, status or error) for one GET; bounded by its own timeout."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            response.read()
            outcome: int | str = response.status
    except Exception as exc:  # any failure is a refused or lost request
        outcome = f"{type(exc).__name__}: {exc}"
    return started, time.monotonic(), outcome


class Load:
    """What requests_across saw."""

    def __init__(self, steady, burst, still_activating, returncode, stdout, stderr, seconds):
        self.steady, self.burst, self.still_activating = steady, burst, still_activating
        self.returncode, self.stdout, self.stderr, self.seconds = returncode, stdout, stderr, seconds

    def check(self):
        print(
            f"\n{len(self.burst)} requests sent at once while bitpoll.service was activating, "
            f"{len(self.steady)} more from 4 steady clients; the restart took {self.seconds:.2f} s"
        )
        failures = [r for r in self.steady + self.burst if r[2] != 200]
        assert len(self.burst) == 200 and len(self.steady) == 100
        assert not failures, failures[:5]
        assert (
            self.still_activating
        ), "the service was already serving again when the last request was sent; the test proved little"


def requests_across(container, command, base_url=None) -> Load:
    """Run `command` (which restarts bitpoll.service) under load, all on 127.0.0.1: four
    clients send 25 requests each across the whole restart (the old server stopping with
    requests in flight, the gap, the new server starting), and once the unit is "activating"
    (the old server gone, the new one not yet serving) 200 requests are sent at once."""
    base = base_url or container.info_values["BASE_URL"]
    steady: list = []
    burst: list = []
    lock = threading.Lock()

    def steady_client():
        for _ in range(25):
            result = fetch(base + "/")
            with lock:
                steady.append(result)
            time.sleep(0.01)

    def burst_client():
        result = fetch(base + "/")
        with lock:
            burst.append(result)

    clients = [threading.Thread(target=steady_client) for _ in range(4)]
    for thread in clients:
        thread.start()
    while len(steady) < 20 and any(t.is_alive() for t in clients):
        time.sleep(0.01)
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = started + 120
    while show(container, "bitpoll.service", "ActiveState")["ActiveState"] != "activating":
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            stdout, stderr = process.communicate()
            raise AssertionError(f"missed the restart's activating phase: {stdout} {stderr}")
        time.sleep(0.02)
    burst_threads = [threading.Thread(target=burst_client) for _ in range(200)]
    for thread in burst_threads:
        thread.start()
    still_activating = show(container, "bitpoll.service", "ActiveState")["ActiveState"] == "activating"
    stdout, stderr = process.communicate(timeout=300)
    seconds = time.monotonic() - started
    for thread in burst_threads + clients:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in burst_threads + clients), "requests still hanging"
    return Load(steady, burst, still_activating, process.returncode, stdout, stderr, seconds)


def container_listeners(container) -> list[tuple[str, str]]:
    """(local address, owners) of every TCP and UDP socket that a process of the container
    listens on. The container shares the host's network, so `ss` lists the host's sockets too,
    but names owners only for processes in the container's own process namespace."""
    out = sh(container, "ss", "-Hltunp").stdout
    listeners = []
    for line in out.splitlines():
        fields = line.split()
        owners = next((f for f in fields if f.startswith("users:")), None)
        if owners:
            listeners.append((fields[4], owners))
    return listeners
