"""The settings the module renders, fed to a real Bitpoll through the package's shim.

Each configuration is evaluated with nixpkgs' lib (NIXPKGS_LIB), its settings JSON given to the
process testbed (ci/testbed, a Bitpoll checkout laid out as the package, BITPOLL_SRC), and the
running app must honour it. Skipped with the reason when either is absent.
"""

import http.client
import json
import os
import re
import sys
import urllib.parse

import pytest

from module_helpers import REPO, evaluate_module, needs_nixpkgs_lib

sys.path.insert(0, str(REPO / "ci" / "testbed"))
import bitpoll_testbed as testbed  # noqa: E402

pytestmark = needs_nixpkgs_lib


def current_version() -> str:
    versions = []
    for pin in (REPO / "package" / "pins").glob("bitpoll-*.json"):
        versions.append(json.loads(pin.read_text())["version"])
    return max(versions, key=lambda v: tuple(int(part) for part in v.split(".")))


@pytest.fixture(scope="module")
def build():
    src = os.environ.get("BITPOLL_SRC")
    if not src:
        pytest.skip("BITPOLL_SRC is not set: it names the Bitpoll checkout these tests run against")
    return testbed.prepare(src, version=current_version())


@pytest.fixture
def serve(build, tmp_path):
    """Start Bitpoll with the settings the module renders for `body` (a NixOS configuration)."""
    instances = []

    def start(body: str, secret_files: dict[str, str] | None = None) -> testbed.Instance:
        """`secret_files`: the content of each file the configuration's credentials name."""
        result = evaluate_module("{ services.bitpoll.enable = true; " + body + " }")
        assert result["assertions"] == [], result["assertions"]
        instance = testbed.Instance(
            build, str(tmp_path / f"instance{len(instances)}"), settings=result["settings"]
        )
        instances.append(instance)
        # The credentials the units load beyond the testbed's own, as LoadCredential= provides them.
        for entry in result["services"]["bitpoll"]["serviceConfig"].get("LoadCredential", []):
            name, _, source = entry.partition(":")
            os.makedirs(instance.credentials_dir, mode=0o700, exist_ok=True)
            with open(
                os.open(os.path.join(instance.credentials_dir, name), os.O_WRONLY | os.O_CREAT, 0o400), "w"
            ) as handle:
                handle.write(secret_files[source])
        return instance.start()

    yield start
    for instance in instances:
        instance.stop()


def request(instance, path="/", method="GET", host="127.0.0.1", headers=None, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", instance.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read().decode(errors="replace")
    finally:
        connection.close()


def cookies(headers):
    return [value for name, value in headers if name.lower() == "set-cookie"]


def test_default_settings(serve):
    instance = serve("")
    status, _, page = request(instance)
    assert status == 200
    assert re.search(r"<title>[^<]*- Bitpoll</title>", page)
    assert "Umfrage" not in page  # LANGUAGE_CODE en-us, not upstream's de-de
    # ALLOWED_HOSTS from allowedHosts: an unknown Host is refused.
    assert request(instance, host="evil.example.org")[0] == 400


def test_site_name_and_language(serve):
    instance = serve('services.bitpoll.settings = { SITE_NAME = "Example Polls"; LANGUAGE_CODE = "de-de"; };')
    status, _, page = request(instance)
    assert status == 200
    assert re.search(r"<title>[^<]*- Example Polls</title>", page)
    assert "Umfrage" in page


def test_https_behind_nginx(serve):
    # What nginx sends: its own Host and X-Forwarded-Proto (recommendedProxySettings).
    instance = serve(
        'services.bitpoll.nginx = { enable = true; hostName = "polls.example.org"; forceSSL = true; enableACME = true; };'
        ' services.bitpoll.allowedHosts = [ "polls.example.org" "127.0.0.1" ];'
    )
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.7"}
    status, headers, page = request(instance, host="polls.example.org", headers=proxied)
    assert status == 200
    csrf_cookie = next(c for c in cookies(headers) if c.startswith("csrftoken="))
    # BASE_URL is https: the cookie is only ever sent back over HTTPS.
    assert "Secure" in csrf_cookie
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": token,
            "title": "Module settings",
            "type": "universal",
            "url": "module-settings",
            "random_slug": "false",
        }
    )
    post_headers = {
        **proxied,
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": csrf_cookie.split(";")[0],
        "Origin": "https://polls.example.org",
        "Referer": "https://polls.example.org/",
    }
    # A form post through the TLS-terminating proxy passes Django's HTTPS CSRF checks.
    status, headers, body = request(
        instance, method="POST", host="polls.example.org", headers=post_headers, body=form
    )
    assert status == 302, body[:2000]
    # The same post from a foreign origin is refused.
    foreign = {**post_headers, "Origin": "https://evil.example.org", "Referer": "https://evil.example.org/"}
    assert request(instance, method="POST", host="polls.example.org", headers=foreign, body=form)[0] == 403


def test_secret_settings_reach_django_from_the_credentials(serve):
    instance = serve(
        'services.bitpoll.secretSettings = { EMAIL_HOST_PASSWORD = "/run/secrets/smtp";'
        ' AUTH_LDAP_BIND_PASSWORD = "/run/secrets/ldap"; };',
        secret_files={"/run/secrets/smtp": "smtp pass word\n", "/run/secrets/ldap": "ldap-bind-secret"},
    )
    assert request(instance)[0] == 200
    settings = json.loads(open(instance.settings_file).read())
    assert settings["EMAIL_HOST_PASSWORD"] == {"_secret": "setting_email_host_password"}
    output = instance.shell(
        "import json; from django.conf import settings as s; "
        "print('SECRETS', json.dumps([s.EMAIL_HOST_PASSWORD, s.AUTH_LDAP_BIND_PASSWORD]))"
    )
    line = next(line for line in output.splitlines() if line.startswith("SECRETS "))
    assert json.loads(line[len("SECRETS ") :]) == ["smtp pass word", "ldap-bind-secret"]
