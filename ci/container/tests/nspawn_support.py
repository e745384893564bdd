"""What the container tests share: whether this host can run systemd-nspawn, and the testbed.

Deliberately not a conftest.py: other test directories import their own `conftest` by name, and
pytest keeps only one module of that name, so a second one would shadow theirs.
"""

from __future__ import annotations

import html.parser
import http.cookiejar
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import container_testbed as testbed  # noqa: E402

__all__ = ["Browser", "create_poll", "host_problem", "journal", "require_host", "sh", "show", "testbed"]


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
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect())

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
    status, headers, body = browser.request("/", {"csrfmiddlewaretoken": form.csrf, "title": title, "type": "universal", "url": slug})
    assert status == 302, f"creating the poll: {status} {body[:500]}"
    assert f"/poll/{slug}/edit/choices/universal" in headers["Location"]
    form = browser.form(f"/poll/{slug}/edit/choices/universal/")
    # "next" is the name of the form's submit button; without it the editor shows itself again.
    fields = {"csrfmiddlewaretoken": form.csrf, "choice_text": list(choices), "choice_sort_key": [str(i + 1) for i in range(len(choices))], "next": ""}
    status, _, body = browser.request(f"/poll/{slug}/edit/choices/universal/", fields)
    assert status == 302, f"adding choices: {status} {body[:500]}"
    return browser

