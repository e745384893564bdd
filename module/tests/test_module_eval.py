"""services.bitpoll evaluated with nixpkgs' lib alone (lib.evalModules), the NixOS options
and pkgs attributes of facts/nixpkgs.toml (the stand-ins facts/default.nix generates from it).

Needs NIXPKGS_LIB (a path to nixpkgs' lib); skipped with that reason otherwise.
"""

import importlib.util
import json
import os
import sys

import pytest

from module_helpers import NixError, REPO, evaluate_module, needs_nixpkgs_lib, render_units

pytestmark = needs_nixpkgs_lib

ENABLE = "services.bitpoll.enable = true;"


def config(body: str = "") -> str:
    return "{ " + ENABLE + " " + body + " }"


@pytest.fixture(scope="module")
def default():
    return evaluate_module(config())


# Defaults, option metadata and examples.


def test_defaults_evaluate_without_assertions_or_warnings(default):
    assert default["assertions"] == []
    assert default["warnings"] == []


def test_default_settings_file(default):
    assert default["settings"] == {
        "ALLOWED_HOSTS": ["localhost", "127.0.0.1", "[::1]"],
        "BASE_URL": "http://localhost:8080",
        "CALENDAR_ENABLED": False,
        "EMAIL_USE_TLS": False,
        "GROUP_MANAGEMENT": False,
        "LANGUAGE_CODE": "en-us",
        "PUBLIC_POLLS": True,
        "REGISTER_ENABLED": False,
        "SITE_NAME": "Bitpoll",
        "TIME_ZONE": "UTC",
    }


def test_default_units_users_and_nothing_else(default):
    assert sorted(default["services"]) == ["bitpoll", "bitpoll-clearsessions"]
    assert sorted(default["timers"]) == ["bitpoll-clearsessions"]
    socket = default["sockets"]["bitpoll"]
    assert socket["listenStreams"] == ["127.0.0.1:8080"]
    assert socket["wantedBy"] == ["sockets.target"]
    service = default["services"]["bitpoll"]
    assert service["wantedBy"] == ["multi-user.target"]
    assert service["requires"] == ["bitpoll.socket"]
    assert service["stopIfChanged"] is False
    assert service["serviceConfig"]["ExecStart"].endswith("-bitpoll-0.11.0/bin/bitpoll-server --workers 2")
    assert service["serviceConfig"]["LoadCredential"] == []
    assert service["environment"]["BITPOLL_STATE_DIR"] == "/var/lib/bitpoll"
    assert default["services"]["bitpoll-clearsessions"]["restartIfChanged"] is False
    assert default["users"] == {
        "bitpoll": {"isSystemUser": True, "group": "bitpoll", "description": "Bitpoll service user"}
    }
    assert default["groups"] == {"bitpoll": {}}
    assert default["postgresql"]["enable"] is False
    assert default["nginx"]["enable"] is False
    assert default["firewall"] == []
    assert default["tmpfiles"] == {}
    assert sorted(w["name"] for w in default["wrappers"]) == ["bitpoll-manage", "bitpoll-ops"]


def test_module_units_equal_the_pure_unit_data(default, tmp_path):
    # The module maps units.nix into NixOS options; ci/render-units renders the same data for
    # the container testbed. Fed the same inputs, both must agree directive for directive.
    service = default["services"]["bitpoll"]
    package = service["serviceConfig"]["ExecStart"].split("/bin/")[0]
    result = render_units(
        tmp_path,
        "--package",
        package,
        "--settings-file",
        service["environment"]["BITPOLL_SETTINGS_FILE"],
        "--no-backup",
    )
    assert result.returncode == 0, result.stderr
    units = json.loads((tmp_path / "units.json").read_text())["units"]
    for name in ["bitpoll", "bitpoll-clearsessions"]:
        pure = units[f"{name}.service"]
        mapped = default["services"][name]
        assert mapped["serviceConfig"] == pure["Service"], name
        assert mapped["environment"] == pure["environment"], name
        assert mapped["after"] == pure["Unit"]["After"] and mapped["requires"] == pure["Unit"]["Requires"]
        assert mapped["wantedBy"] == pure.get("Install", {}).get("WantedBy", [])
    socket = units["bitpoll.socket"]
    assert default["sockets"]["bitpoll"]["listenStreams"] == socket["Socket"]["ListenStream"]
    timer = units["bitpoll-clearsessions.timer"]
    assert default["timers"]["bitpoll-clearsessions"]["timerConfig"] == timer["Timer"]


def test_unit_disabled_module_sets_nothing():
    result = evaluate_module("{ }")
    assert result["services"] == {} and result["sockets"] == {} and result["users"] == {}
    assert result["settings"] is None


@pytest.fixture(scope="module")
def options():
    return evaluate_module(config(), attr="options")


def test_every_option_is_documented_typed_defaulted_and_exemplified(options):
    names = {option["name"] for option in options}
    # The options the issue asks for, present under their names.
    for name in [
        "services.bitpoll.enable",
        "services.bitpoll.package",
        "services.bitpoll.user",
        "services.bitpoll.group",
        "services.bitpoll.dataDir",
        "services.bitpoll.listenAddress",
        "services.bitpoll.port",
        "services.bitpoll.unixSocket",
        "services.bitpoll.openFirewall",
        "services.bitpoll.allowedHosts",
        "services.bitpoll.baseUrl",
        "services.bitpoll.workers",
        "services.bitpoll.secretKeyFile",
        "services.bitpoll.encryptionKeyFile",
        "services.bitpoll.database.passwordFile",
        "services.bitpoll.database.createLocally",
        "services.bitpoll.settings",
        "services.bitpoll.settings.SITE_NAME",
        "services.bitpoll.nginx.enable",
        "services.bitpoll.nginx.forceSSL",
        "services.bitpoll.nginx.enableACME",
        "services.bitpoll.backup.enable",
        "services.bitpoll.backup.onCalendar",
        "services.bitpoll.backup.directory",
        "services.bitpoll.backup.keep",
        "services.bitpoll.clearsessions.enable",
    ]:
        assert name in names
    incomplete = [
        option["name"]
        for option in options
        if not (option["hasDescription"] and option["hasDefault"] and option["hasExample"] and option["type"])
    ]
    assert incomplete == []


def test_every_example_type_checks():
    # eval.nix sets every option to its example at once; a type error fails the evaluation.
    examples = evaluate_module(config(), attr="examples")
    assert examples["settings"]["SITE_NAME"] == "Example Polls"
    assert examples["settings"]["IMPRINT_URL"] == "https://example.org/imprint"
    assert examples["settings"]["EMAIL_PORT"] == 587
    assert "bitpoll-backup" in examples["services"]


def test_a_bad_value_is_a_type_error():
    with pytest.raises(NixError, match="services.bitpoll.port"):
        evaluate_module(config("services.bitpoll.port = 70000;"))
    with pytest.raises(NixError, match="services.bitpoll.baseUrl"):
        evaluate_module(config('services.bitpoll.baseUrl = "polls.example.org";'))
    with pytest.raises(NixError, match="services.bitpoll.dataDir"):
        evaluate_module(config('services.bitpoll.dataDir = "relative/path";'))


# Assertions: each fires for its bad configuration, naming the option, and stays silent for the
# corrected one.

ASSERTIONS = [
    pytest.param(
        "services.bitpoll.allowedHosts = [ ];",
        'services.bitpoll.allowedHosts = [ "localhost" ];',
        "services.bitpoll.allowedHosts is empty, so Bitpoll would answer every request with 400 Bad Request",
        id="empty-allowed-hosts",
    ),
    pytest.param(
        'services.bitpoll.listenAddress = "0.0.0.0";',
        'services.bitpoll.listenAddress = "0.0.0.0"; services.bitpoll.allowedHosts = [ "polls.example.org" ];',
        "services.bitpoll.allowedHosts names no public host",
        id="public-listen-without-allowed-hosts",
    ),
    pytest.param(
        "services.bitpoll.nginx.enable = true;",
        'services.bitpoll.nginx.enable = true; services.bitpoll.nginx.hostName = "polls.example.org";',
        "set services.bitpoll.nginx.hostName to the public host name",
        id="nginx-with-localhost",
    ),
    pytest.param(
        'services.bitpoll.nginx.enable = true; services.bitpoll.nginx.hostName = "polls.example.org"; '
        'services.bitpoll.allowedHosts = [ "localhost" ];',
        'services.bitpoll.nginx.enable = true; services.bitpoll.nginx.hostName = "polls.example.org";',
        "services.bitpoll.allowedHosts names no public host (localhost), yet Bitpoll is reachable from other machines (through nginx)",
        id="nginx-with-local-allowed-hosts",
    ),
    pytest.param(
        'services.bitpoll.database.type = "postgresql"; services.bitpoll.database.host = "db.example.org"; '
        'services.bitpoll.outboundAddresses = [ "192.0.2.5" ];',
        'services.bitpoll.database.type = "postgresql"; services.bitpoll.database.host = "db.example.org"; '
        'services.bitpoll.outboundAddresses = [ "192.0.2.5" ]; services.bitpoll.database.createLocally = false;',
        'services.bitpoll.database.createLocally creates the database on this machine, but services.bitpoll.database.host is "db.example.org"',
        id="create-locally-with-remote-host",
    ),
    pytest.param(
        'services.bitpoll.database.type = "postgresql"; services.bitpoll.database.createLocally = false; '
        'services.bitpoll.database.host = "db.example.org";',
        'services.bitpoll.database.type = "postgresql"; services.bitpoll.database.createLocally = false; '
        'services.bitpoll.database.host = "db.example.org"; services.bitpoll.outboundAddresses = [ "192.0.2.5" ];',
        "services.bitpoll.outboundAddresses is empty, so the service has no network",
        id="remote-database-without-network",
    ),
    pytest.param(
        'services.bitpoll.database.type = "postgresql"; services.bitpoll.database.createLocally = false;',
        'services.bitpoll.database.type = "postgresql"; services.bitpoll.database.createLocally = false; '
        'services.bitpoll.database.host = "/run/postgresql";',
        "services.bitpoll.database.host is not set, but database.createLocally is false",
        id="remote-database-without-host",
    ),
    pytest.param(
        'services.bitpoll.database = { type = "postgresql"; user = "polls"; name = "polls"; };',
        'services.bitpoll.database = { type = "postgresql"; user = "bitpoll"; name = "bitpoll"; };',
        'services.bitpoll.database.user ("polls") must equal services.bitpoll.user ("bitpoll")',
        id="peer-auth-user-mismatch",
    ),
    pytest.param(
        'services.bitpoll.database.type = "postgresql"; services.bitpoll.database.name = "polls";',
        'services.bitpoll.database.type = "postgresql"; services.bitpoll.database.name = "bitpoll";',
        'services.bitpoll.database.name ("polls") must equal services.bitpoll.database.user ("bitpoll")',
        id="db-ownership-name-mismatch",
    ),
    pytest.param(
        'services.bitpoll.secretKeyFile = "/nix/store/00000000000000000000000000000000-secret";',
        'services.bitpoll.secretKeyFile = "/run/keys/bitpoll-secret-key";',
        "services.bitpoll.secretKeyFile points into the Nix store (/nix/store/00000000000000000000000000000000-secret), which every local user can read",
        id="secret-key-in-store",
    ),
    pytest.param(
        "services.bitpoll.encryptionKeyFile = ./secret-file;",
        'services.bitpoll.encryptionKeyFile = "/run/keys/bitpoll-encryption-key";',
        "services.bitpoll.encryptionKeyFile is a Nix path literal, which Nix copies into the world-readable store",
        id="encryption-key-path-literal",
    ),
    pytest.param(
        'services.bitpoll.database.type = "postgresql"; services.bitpoll.database.createLocally = false; '
        'services.bitpoll.database.host = "/run/postgresql"; '
        'services.bitpoll.database.passwordFile = "/nix/store/00000000000000000000000000000000-pw";',
        'services.bitpoll.database.type = "postgresql"; services.bitpoll.database.createLocally = false; '
        'services.bitpoll.database.host = "/run/postgresql"; services.bitpoll.database.passwordFile = "/run/keys/pw";',
        "services.bitpoll.database.passwordFile points into the Nix store",
        id="db-password-in-store",
    ),
    pytest.param(
        'services.bitpoll.settings.SECRET_KEY = "hunter2";',
        "",
        "services.bitpoll.settings.SECRET_KEY would be written to the world-readable Nix store: remove it and set services.bitpoll.secretKeyFile",
        id="secret-key-in-settings",
    ),
    pytest.param(
        'services.bitpoll.settings.FIELD_ENCRYPTION_KEY = "x";',
        "",
        "services.bitpoll.settings.FIELD_ENCRYPTION_KEY would be written to the world-readable Nix store",
        id="encryption-key-in-settings",
    ),
    pytest.param(
        'services.bitpoll.database.type = "postgresql"; services.bitpoll.settings.DATABASES.default.PASSWORD = "x";',
        'services.bitpoll.database.type = "postgresql";',
        "services.bitpoll.settings.DATABASES.default.PASSWORD would be written to the world-readable Nix store: remove it and set services.bitpoll.database.passwordFile",
        id="db-password-in-settings",
    ),
    pytest.param(
        'services.bitpoll.secretSettings.EMAIL_HOST_PASSWORD = "/nix/store/00000000000000000000000000000000-smtp";',
        'services.bitpoll.secretSettings.EMAIL_HOST_PASSWORD = "/run/secrets/smtp";',
        "services.bitpoll.secretSettings.EMAIL_HOST_PASSWORD points into the Nix store",
        id="secret-setting-in-store",
    ),
    pytest.param(
        "services.bitpoll.secretSettings.AUTH_LDAP_BIND_PASSWORD = ./ldap-password;",
        'services.bitpoll.secretSettings.AUTH_LDAP_BIND_PASSWORD = "/run/secrets/ldap";',
        "services.bitpoll.secretSettings.AUTH_LDAP_BIND_PASSWORD is a Nix path literal",
        id="secret-setting-path-literal",
    ),
    pytest.param(
        'services.bitpoll.secretSettings.email_host_password = "/run/secrets/smtp";',
        'services.bitpoll.secretSettings.EMAIL_HOST_PASSWORD = "/run/secrets/smtp";',
        "services.bitpoll.secretSettings.email_host_password does not name a setting",
        id="secret-setting-bad-name",
    ),
    pytest.param(
        'services.bitpoll.secretSettings.SECRET_KEY = "/run/secrets/sk";',
        'services.bitpoll.secretKeyFile = "/run/secrets/sk";',
        "services.bitpoll.secretSettings.SECRET_KEY is not read: set services.bitpoll.secretKeyFile to that file instead",
        id="secret-key-as-secret-setting",
    ),
    pytest.param(
        'services.bitpoll.secretSettings.FIELD_ENCRYPTION_KEY = "/run/secrets/ek";',
        'services.bitpoll.encryptionKeyFile = "/run/secrets/ek";',
        "set services.bitpoll.encryptionKeyFile to that file instead",
        id="encryption-key-as-secret-setting",
    ),
    pytest.param(
        'services.bitpoll.secretSettings.OPENID_CLIENT_SECRET = "/run/secrets/oidc"; '
        'services.bitpoll.settings.OPENID_CLIENT_SECRET = { _secret = "oidc"; };',
        'services.bitpoll.secretSettings.OPENID_CLIENT_SECRET = "/run/secrets/oidc";',
        "services.bitpoll.secretSettings.OPENID_CLIENT_SECRET and services.bitpoll.settings.OPENID_CLIENT_SECRET are both set",
        id="secret-setting-also-in-settings",
    ),
    pytest.param(
        "services.bitpoll.settings.OPENID_ENABLED = true; services.bitpoll.settings.GROUP_MANAGEMENT = true;",
        "services.bitpoll.settings.OPENID_ENABLED = true;",
        "services.bitpoll.settings.OPENID_ENABLED and services.bitpoll.settings.GROUP_MANAGEMENT cannot both be on",
        id="openid-with-group-management",
    ),
    pytest.param(
        'services.bitpoll.openFirewall = true; services.bitpoll.unixSocket = "/run/bitpoll/bitpoll.sock";',
        'services.bitpoll.unixSocket = "/run/bitpoll/bitpoll.sock";',
        "services.bitpoll.openFirewall opens TCP port 8080, but the service listens on services.bitpoll.unixSocket",
        id="firewall-with-unix-socket",
    ),
]


@pytest.mark.parametrize(("bad", "good", "message"), ASSERTIONS)
def test_assertion_fires_for_bad_and_not_for_good_configuration(bad, good, message):
    failed = evaluate_module(config(bad))["assertions"]
    assert len(failed) == 1, failed
    assert message in failed[0]
    assert failed[0].count("\n") == 0, "one line"
    assert evaluate_module(config(good))["assertions"] == []


WARNINGS = [
    pytest.param(
        "services.bitpoll.openFirewall = true;",
        'services.bitpoll.openFirewall = true; services.bitpoll.listenAddress = "0.0.0.0"; '
        'services.bitpoll.allowedHosts = [ "polls.example.org" ];',
        "services.bitpoll.listenAddress is 127.0.0.1, which other machines cannot reach",
        id="firewall-loopback",
    ),
    pytest.param(
        "services.bitpoll.settings.CALENDAR_ENABLED = true;",
        'services.bitpoll.settings.CALENDAR_ENABLED = true; services.bitpoll.outboundAddresses = [ "any" ];',
        "services.bitpoll.settings.CALENDAR_ENABLED is on, but services.bitpoll.outboundAddresses is empty",
        id="calendar-offline",
    ),
    pytest.param(
        "services.bitpoll.settings.REGISTER_ENABLED = true;",
        'services.bitpoll.settings.REGISTER_ENABLED = true; services.bitpoll.outboundAddresses = [ "localhost" ];',
        "services.bitpoll.settings.REGISTER_ENABLED is on",
        id="register-offline",
    ),
    pytest.param(
        'services.bitpoll.settings.EMAIL_HOST = "mail.example.org";',
        'services.bitpoll.settings.EMAIL_HOST = "mail.example.org"; services.bitpoll.outboundAddresses = [ "192.0.2.25" ];',
        "services.bitpoll.settings.EMAIL_HOST is set",
        id="email-offline",
    ),
    pytest.param(
        "services.bitpoll.settings.OPENID_ENABLED = true;",
        'services.bitpoll.settings.OPENID_ENABLED = true; services.bitpoll.outboundAddresses = [ "192.0.2.80" ];',
        "services.bitpoll.settings.OPENID_ENABLED is on",
        id="openid-offline",
    ),
    pytest.param(
        'services.bitpoll.settings.AUTH_LDAP_SERVER_URI = "ldaps://ldap.example.org";',
        'services.bitpoll.settings.AUTH_LDAP_SERVER_URI = "ldaps://ldap.example.org"; '
        'services.bitpoll.outboundAddresses = [ "192.0.2.89" ];',
        "services.bitpoll.settings.AUTH_LDAP_SERVER_URI is set",
        id="ldap-offline",
    ),
    pytest.param(
        "services.bitpoll.settings.DEBUG = true;",
        "services.bitpoll.settings.DEBUG = false;",
        "services.bitpoll.settings.DEBUG is on",
        id="debug",
    ),
    pytest.param(
        'services.bitpoll.settings.EMAIL_HOST_PASSWORD = "x";',
        'services.bitpoll.secretSettings.EMAIL_HOST_PASSWORD = "/run/secrets/smtp";',
        "services.bitpoll.settings.EMAIL_HOST_PASSWORD is written to the world-readable Nix store: remove "
        "it and set services.bitpoll.secretSettings.EMAIL_HOST_PASSWORD to a file",
        id="email-password",
    ),
    pytest.param(
        'services.bitpoll.settings.AUTH_LDAP_BIND_PASSWORD = "x";',
        'services.bitpoll.secretSettings.AUTH_LDAP_BIND_PASSWORD = "/run/secrets/ldap";',
        "set services.bitpoll.secretSettings.AUTH_LDAP_BIND_PASSWORD",
        id="ldap-password",
    ),
    # A reference to a credential provided some other way is no secret in the store.
    pytest.param(
        'services.bitpoll.settings.OPENID_CLIENT_SECRET = "x";',
        'services.bitpoll.settings.OPENID_CLIENT_SECRET = { _secret = "oidc"; };',
        "set services.bitpoll.secretSettings.OPENID_CLIENT_SECRET",
        id="openid-secret",
    ),
    pytest.param(
        'services.bitpoll.database.passwordFile = "/run/keys/pw";',
        "",
        "services.bitpoll.database.passwordFile is ignored",
        id="password-with-sqlite",
    ),
    pytest.param(
        'services.bitpoll.nginx.enable = true; services.bitpoll.nginx.hostName = "polls.example.org"; '
        'services.bitpoll.listenAddress = "0.0.0.0";',
        'services.bitpoll.nginx.enable = true; services.bitpoll.nginx.hostName = "polls.example.org";',
        "services.bitpoll.nginx.enable makes Bitpoll trust X-Forwarded-Proto",
        id="nginx-with-public-listen",
    ),
]


@pytest.mark.parametrize(("bad", "good", "message"), WARNINGS)
def test_warning_fires_for_bad_and_not_for_good_configuration(bad, good, message):
    result = evaluate_module(config(bad))
    assert result["assertions"] == []
    assert len(result["warnings"]) == 1 and message in result["warnings"][0], result["warnings"]
    assert evaluate_module(config(good))["warnings"] == []


# Rendered settings and units for a few configurations.


def test_nginx_with_https():
    result = evaluate_module(
        config(
            'services.bitpoll.nginx = { enable = true; hostName = "polls.example.org"; forceSSL = true; enableACME = true; };'
            ' services.bitpoll.unixSocket = "/run/bitpoll/bitpoll.sock";'
        )
    )
    assert result["assertions"] == [] and result["warnings"] == []
    settings = result["settings"]
    assert settings["ALLOWED_HOSTS"] == ["polls.example.org"]
    assert settings["BASE_URL"] == "https://polls.example.org"
    assert settings["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    socket = result["sockets"]["bitpoll"]
    assert socket["listenStreams"] == ["/run/bitpoll/bitpoll.sock"]
    assert socket["socketConfig"] == {"SocketUser": "root", "SocketGroup": "nginx", "SocketMode": "0660"}
    nginx = result["nginx"]
    assert nginx["enable"] and nginx["recommendedProxySettings"]
    assert nginx["upstreams"] == {"bitpoll": {"servers": {"unix:/run/bitpoll/bitpoll.sock": {}}}}
    vhost = nginx["virtualHosts"]["polls.example.org"]
    assert vhost["forceSSL"] and vhost["enableACME"]
    locations = vhost["locations"]
    assert locations["/"]["proxyPass"] == "http://bitpoll"
    assert locations["/"]["recommendedProxySettings"] is True
    assert locations["/static/"]["root"].endswith("-bitpoll-0.11.0/share/bitpoll")
    hashed = [name for name in locations if name.startswith("~")]
    assert hashed == ['~ "^/static/.+\\.[0-9a-f]{12}\\.[A-Za-z0-9]+$"']
    assert "immutable" in locations[hashed[0]]["extraConfig"]
    # The health endpoint is passed on to this machine's own probes only.
    health = locations["= /-/health"]
    assert health["proxyPass"] == "http://bitpoll"
    assert health["extraConfig"].split("\n")[:3] == ["allow 127.0.0.1;", "allow ::1;", "deny all;"]


def test_nginx_over_tcp_connects_to_loopback_for_a_wildcard_address():
    result = evaluate_module(
        config(
            'services.bitpoll.nginx = { enable = true; hostName = "polls.example.org"; };'
            ' services.bitpoll.listenAddress = "::"; services.bitpoll.port = 8081;'
        )
    )
    assert result["nginx"]["upstreams"]["bitpoll"]["servers"] == {"[::1]:8081": {}}
    assert result["settings"]["BASE_URL"] == "http://polls.example.org"


def test_local_postgresql():
    result = evaluate_module(config('services.bitpoll.database.type = "postgresql";'))
    assert result["assertions"] == []
    assert result["settings"]["DATABASES"] == {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "bitpoll",
            "USER": "bitpoll",
            "HOST": "/run/postgresql",
            "PORT": "5432",
        }
    }
    assert result["postgresql"] == {
        "enable": True,
        "ensureDatabases": ["bitpoll"],
        "ensureUsers": [{"name": "bitpoll", "ensureDBOwnership": True}],
    }
    service = result["services"]["bitpoll"]
    assert "postgresql.target" in service["after"] and "postgresql.target" in service["requires"]
    # Peer authentication over the socket: no network, no password.
    assert service["serviceConfig"]["PrivateNetwork"] is True
    assert service["serviceConfig"]["LoadCredential"] == []
    manage = next(w["text"] for w in result["wrappers"] if w["name"] == "bitpoll-manage")
    assert (
        "-p 'Environment=PATH=/nix/store/00000000000000000000000000000000-postgresql-17/bin:"
        "/nix/store/00000000000000000000000000000000-coreutils/bin'"
    ) in manage


def test_remote_postgresql_with_password_and_backup():
    result = evaluate_module(
        config(
            'services.bitpoll.database = { type = "postgresql"; createLocally = false; host = "db.example.org";'
            ' port = 5433; passwordFile = "/run/keys/bitpoll-db"; };'
            ' services.bitpoll.outboundAddresses = [ "192.0.2.5/32" ];'
            ' services.bitpoll.backup = { enable = true; keep = 3; onCalendar = "hourly"; };'
        )
    )
    assert result["assertions"] == [] and result["warnings"] == []
    assert result["settings"]["DATABASES"]["default"]["HOST"] == "db.example.org"
    assert result["settings"]["DATABASES"]["default"]["PORT"] == "5433"
    assert result["postgresql"]["enable"] is False
    service = result["services"]["bitpoll"]
    assert service["serviceConfig"]["LoadCredential"] == ["db_password:/run/keys/bitpoll-db"]
    assert service["serviceConfig"]["PrivateNetwork"] is False
    assert service["serviceConfig"]["IPAddressAllow"] == ["192.0.2.5/32"]
    assert "postgresql.target" not in service["after"]
    backup = result["services"]["bitpoll-backup"]
    assert backup["serviceConfig"]["ExecStart"].endswith(
        "bitpoll-ops backup --dir /var/backup/bitpoll --keep 3"
    )
    assert backup["path"] == ["/nix/store/00000000000000000000000000000000-postgresql-17"]
    assert backup["serviceConfig"]["LoadCredential"] == ["db_password:/run/keys/bitpoll-db"]
    assert result["timers"]["bitpoll-backup"]["timerConfig"] == {"OnCalendar": "hourly", "Persistent": True}
    assert result["tmpfiles"]["10-bitpoll"] == {
        "/var/backup/bitpoll": {"d": {"mode": "0700", "user": "bitpoll", "group": "bitpoll"}}
    }


def test_a_local_postgresql_the_module_did_not_create_is_waited_for():
    """createLocally = false with the server on this machine (its socket directory): every
    Bitpoll unit starts after postgresql.target and wants it, without requiring it."""
    result = evaluate_module(
        config(
            'services.bitpoll.database = { type = "postgresql"; createLocally = false; host = "/run/postgresql"; };'
            " services.postgresql.enable = true;"
        )
    )
    assert result["assertions"] == []
    for name in ("bitpoll", "bitpoll-clearsessions"):
        service = result["services"][name]
        assert "postgresql.target" in service["after"] and service["wants"] == ["postgresql.target"], name
        assert "postgresql.target" not in service["requires"], name
    # Without a local server there is nothing to wait for.
    remote = evaluate_module(
        config(
            'services.bitpoll.database = { type = "postgresql"; createLocally = false; host = "/run/postgresql"; };'
        )
    )
    assert "postgresql.target" not in remote["services"]["bitpoll"]["after"]
    assert remote["services"]["bitpoll"]["wants"] == []


def test_the_socket_is_bound_to_the_listen_target_in_nixos_options():
    result = evaluate_module(config('services.bitpoll.listenAddress = "192.0.2.10";'))
    socket = result["sockets"]["bitpoll"]
    [target] = [name for name in result["targets"] if name.startswith("bitpoll-listen-")]
    assert socket["bindsTo"] == [f"{target}.target"] and socket["after"] == [f"{target}.target"]
    assert socket["socketConfig"]["FreeBind"] is True
    assert result["targets"][target]["description"] == "Bitpoll listens on 192.0.2.10:8080"


def test_secrets_are_credentials_and_settings_stay_free_of_them():
    result = evaluate_module(
        config(
            'services.bitpoll.secretKeyFile = "/run/keys/sk"; services.bitpoll.encryptionKeyFile = "/run/keys/ek";'
        )
    )
    for name in ["bitpoll", "bitpoll-clearsessions"]:
        assert result["services"][name]["serviceConfig"]["LoadCredential"] == [
            "encryption_key:/run/keys/ek",
            "secret_key:/run/keys/sk",
        ]
    assert "/run/keys" not in json.dumps(result["settings"])


def test_secret_settings_are_credentials_named_in_the_settings():
    result = evaluate_module(
        config(
            'services.bitpoll.secretSettings = { EMAIL_HOST_PASSWORD = "/run/secrets/smtp";'
            ' OPENID_CLIENT_SECRET = "/run/secrets/oidc"; };'
            ' services.bitpoll.secretKeyFile = "/run/keys/sk"; services.bitpoll.backup.enable = true;'
        )
    )
    assert result["assertions"] == [] and result["warnings"] == []
    expected = [
        "secret_key:/run/keys/sk",
        "setting_email_host_password:/run/secrets/smtp",
        "setting_openid_client_secret:/run/secrets/oidc",
    ]
    # Every process that loads the settings gets them: the server, the jobs, the admin commands.
    for name in ["bitpoll", "bitpoll-clearsessions", "bitpoll-backup"]:
        assert result["services"][name]["serviceConfig"]["LoadCredential"] == expected
    for wrapper in result["wrappers"]:
        for credential in expected:
            assert f"-p 'LoadCredential={credential}'" in wrapper["text"]
    settings = result["settings"]
    assert settings["EMAIL_HOST_PASSWORD"] == {"_secret": "setting_email_host_password"}
    assert settings["OPENID_CLIENT_SECRET"] == {"_secret": "setting_openid_client_secret"}
    assert "/run/secrets" not in json.dumps(settings)


def test_freeform_settings_and_nulls():
    result = evaluate_module(
        config(
            'services.bitpoll.settings = { IMPRINT_URL = "https://example.org/imprint"; EMAIL_HOST = "localhost";'
            ' EMAIL_PORT = 587; CSP_REPORT_ONLY = false; ALLOWED_HOSTS = [ "a.example.org" ]; };'
            ' services.bitpoll.outboundAddresses = [ "localhost" ];'
        )
    )
    settings = result["settings"]
    assert settings["IMPRINT_URL"] == "https://example.org/imprint"
    assert settings["EMAIL_HOST"] == "localhost" and settings["EMAIL_PORT"] == 587
    assert settings["CSP_REPORT_ONLY"] is False
    # A setting given directly wins over the one derived from allowedHosts.
    assert settings["ALLOWED_HOSTS"] == ["a.example.org"]
    assert "DEFAULT_FROM_EMAIL" not in settings


def test_custom_user_data_dir_and_port():
    result = evaluate_module(
        config(
            'services.bitpoll = { user = "polls"; group = "polls"; dataDir = "/srv/polls"; port = 9000;'
            ' openFirewall = true; listenAddress = "0.0.0.0"; allowedHosts = [ "polls.example.org" ]; workers = 6; };'
        )
    )
    assert result["assertions"] == [] and result["warnings"] == []
    assert result["users"] == {} and result["groups"] == {}
    assert result["firewall"] == [9000]
    assert result["settings"]["BASE_URL"] == "http://polls.example.org:9000"
    service = result["services"]["bitpoll"]["serviceConfig"]
    assert service["User"] == "polls" and service["ReadWritePaths"] == ["/srv/polls"]
    assert "StateDirectory" not in service
    assert service["ExecStart"].endswith("bitpoll-server --workers 6")
    assert result["sockets"]["bitpoll"]["listenStreams"] == ["0.0.0.0:9000"]
    assert result["tmpfiles"]["10-bitpoll"] == {
        "/srv/polls": {"d": {"mode": "0700", "user": "polls", "group": "polls"}}
    }


# The package's settings shim accepts what the module renders (no Bitpoll checkout needed: the
# shim is standard library only).

SHIM = REPO / "package" / "files" / "settings_local.py"


def load_shim(tmp_path, monkeypatch, settings: dict):
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps(settings))
    credentials = tmp_path / "credentials"
    credentials.mkdir(exist_ok=True)
    (credentials / "secret_key").write_text("s" * 50)
    (credentials / "encryption_key").write_text("A" * 43 + "=")
    monkeypatch.setenv("BITPOLL_SETTINGS_FILE", str(settings_file))
    monkeypatch.setenv("BITPOLL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    monkeypatch.setenv("BITPOLL_STATIC_ROOT", str(tmp_path / "static"))
    spec = importlib.util.spec_from_file_location("bitpoll_settings_local_under_test", SHIM)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop("bitpoll_settings_local_under_test", None)
    return module


@pytest.mark.skipif(not SHIM.is_file(), reason="package/files/settings_local.py is absent")
def test_the_package_shim_reads_secret_settings_from_the_credentials(tmp_path, monkeypatch, capsys):
    result = evaluate_module(
        config(
            'services.bitpoll.secretSettings = { EMAIL_HOST_PASSWORD = "/run/secrets/smtp";'
            ' AUTH_LDAP_BIND_PASSWORD = "/run/secrets/ldap"; };'
        )
    )
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    # What LoadCredential= puts in the credentials directory, under the names the units give.
    for entry in result["services"]["bitpoll"]["serviceConfig"]["LoadCredential"]:
        name, _, source = entry.partition(":")
        (credentials / name).write_text(f"secret from {source}\n")
    shim = load_shim(tmp_path, monkeypatch, result["settings"])
    assert shim.EMAIL_HOST_PASSWORD == "secret from /run/secrets/smtp"
    assert shim.AUTH_LDAP_BIND_PASSWORD == "secret from /run/secrets/ldap"
    # Without the credential the shim stops with its one-line configuration error.
    (credentials / "setting_email_host_password").unlink()
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        load_shim(tmp_path, monkeypatch, result["settings"])
    assert stop.value.code == 78
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "secret setting_email_host_password not found" in error


@pytest.mark.skipif(not SHIM.is_file(), reason="package/files/settings_local.py is absent")
@pytest.mark.parametrize(
    "body",
    [
        "",
        'services.bitpoll.nginx = { enable = true; hostName = "polls.example.org"; forceSSL = true; enableACME = true; };',
        'services.bitpoll.database.type = "postgresql";',
    ],
)
def test_the_package_shim_accepts_the_rendered_settings(tmp_path, monkeypatch, body):
    settings = evaluate_module(config(body))["settings"]
    shim = load_shim(tmp_path, monkeypatch, settings)
    assert shim.ALLOWED_HOSTS == settings["ALLOWED_HOSTS"]
    assert shim.BASE_URL == settings["BASE_URL"]
    assert shim.SITE_NAME == "Bitpoll" and shim.DEBUG is False
    if "SECURE_PROXY_SSL_HEADER" in settings:
        assert shim.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")
        assert shim.CSRF_TRUSTED_ORIGINS == ["https://polls.example.org"]
        assert shim.SESSION_COOKIE_SECURE is True
    if "DATABASES" in settings:
        assert shim.DATABASES["default"]["HOST"] == "/run/postgresql"
        assert "PASSWORD" not in shim.DATABASES["default"]
    else:
        assert shim.DATABASES["default"]["NAME"] == os.path.join(str(tmp_path / "state"), "bitpoll.sqlite3")
