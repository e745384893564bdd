"""The settings shim (package/files/settings_local.py).

The shim is standard library only, so most of its behaviour is tested by running it alone with a
Python interpreter; the tests at the end run it through the real wrappers and Bitpoll (BITPOLL_SRC)
to prove that an error really is one line in the journal, from manage.py, gunicorn and bitpoll-ops.
"""

import base64
import json
import os
import subprocess
import sys
import textwrap

import pytest

from package_paths import FILES

SHIM = os.path.join(FILES, "settings_local.py")
GOOD_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()
BASE_SETTINGS = {"ALLOWED_HOSTS": ["poll.example.org"], "BASE_URL": "https://poll.example.org"}

# Prints the settings the shim exported, as JSON, for the tests to inspect.
DUMP = textwrap.dedent("""
    import json, runpy, sys
    module = runpy.run_path(sys.argv[1])
    exported = {name: module[name] for name in module["__all__"]}
    exported["types"] = {name: type(module[name]).__name__ for name in module["__all__"]}
    print(json.dumps(exported, default=repr))
""")


@pytest.fixture
def deployment(tmp_path):
    """A state directory with both secrets and a valid settings file; tests break one thing."""
    state = tmp_path / "state"
    (state / "secrets").mkdir(parents=True)
    (state / "secrets" / "secret_key").write_text("s" * 50)
    (state / "secrets" / "encryption_key").write_text(GOOD_KEY)
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(BASE_SETTINGS))
    env = {
        "PATH": os.environ["PATH"],
        "BITPOLL_STATE_DIR": str(state),
        "BITPOLL_SETTINGS_FILE": str(settings),
        "BITPOLL_STATIC_ROOT": str(tmp_path / "static"),
    }
    return tmp_path, env


def run_shim(env):
    return subprocess.run([sys.executable, "-c", DUMP, SHIM], env=env, capture_output=True, text=True)


def exported(env):
    result = run_shim(env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 78, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bitpoll: configuration error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def write_settings(tmp_path, content):
    path = tmp_path / "settings.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))


# Each case breaks one thing and names what the one line must mention.
SETTINGS_CASES = {
    "file missing": (None, ["does not exist", "settings.json"]),
    "not json": ("{ALLOWED_HOSTS: [}", ["not valid JSON", "line 1"]),
    "not an object": ("[1, 2]", ["must contain a JSON object", "list"]),
    "no allowed hosts": ({"BASE_URL": "https://poll.example.org"}, ["ALLOWED_HOSTS", "missing"]),
    "empty allowed hosts": ({**BASE_SETTINGS, "ALLOWED_HOSTS": []}, ["ALLOWED_HOSTS", "non-empty list"]),
    "allowed hosts a string": ({**BASE_SETTINGS, "ALLOWED_HOSTS": "poll.example.org"}, ["ALLOWED_HOSTS"]),
    "no base url": ({"ALLOWED_HOSTS": ["x"]}, ["BASE_URL", "missing"]),
    "base url without scheme": ({**BASE_SETTINGS, "BASE_URL": "poll.example.org"}, ["BASE_URL", "https://"]),
    "debug a string": ({**BASE_SETTINGS, "DEBUG": "false"}, ["DEBUG", "true or false"]),
    "databases without engine": (
        {**BASE_SETTINGS, "DATABASES": {"default": {"NAME": "x"}}},
        ["DATABASES", "ENGINE"],
    ),
    "proxy header not a pair": (
        {**BASE_SETTINGS, "SECURE_PROXY_SSL_HEADER": ["X"]},
        ["SECURE_PROXY_SSL_HEADER"],
    ),
    "lower-case key": ({**BASE_SETTINGS, "debug": True}, ["'debug'", "not a setting name"]),
    "secret key in settings": ({**BASE_SETTINGS, "SECRET_KEY": "x"}, ["SECRET_KEY", "secret_key credential"]),
    "encryption key in settings": (
        {**BASE_SETTINGS, "FIELD_ENCRYPTION_KEY": GOOD_KEY},
        ["FIELD_ENCRYPTION_KEY"],
    ),
    "database password in settings": (
        {
            **BASE_SETTINGS,
            "DATABASES": {
                "default": {"ENGINE": "django.db.backends.postgresql", "NAME": "b", "PASSWORD": "x"}
            },
        },
        ["PASSWORD", "db_password"],
    ),
    "bad openid group regex": ({**BASE_SETTINGS, "OPENID_ADMIN_GROUPS": "("}, ["OPENID_ADMIN_GROUPS"]),
}


@pytest.mark.parametrize("case", sorted(SETTINGS_CASES))
def test_bad_settings_give_one_line(deployment, case):
    tmp_path, env = deployment
    content, fragments = SETTINGS_CASES[case]
    if content is None:
        os.unlink(env["BITPOLL_SETTINGS_FILE"])
    else:
        write_settings(tmp_path, content)
    assert_one_line_error(run_shim(env), *fragments)


def test_settings_file_variable_unset(deployment):
    _, env = deployment
    del env["BITPOLL_SETTINGS_FILE"]
    assert_one_line_error(run_shim(env), "BITPOLL_SETTINGS_FILE is not set")


def test_static_root_required(deployment):
    _, env = deployment
    del env["BITPOLL_STATIC_ROOT"]
    assert_one_line_error(run_shim(env), "BITPOLL_STATIC_ROOT")


SECRET_CASES = {
    "secret_key missing": ("secret_key", None, ["secret_key", "not found", "bitpoll-ops prestart"]),
    "secret_key empty": ("secret_key", "\n", ["secret_key", "is empty"]),
    "encryption_key missing": ("encryption_key", None, ["encryption_key", "not found"]),
    "encryption_key empty": ("encryption_key", "", ["encryption_key", "is empty"]),
    "encryption_key the sample's": (
        "encryption_key",
        "this+is+an+example+key+please+generate+one+=",
        ["encryption_key", "public example key"],
    ),
    "encryption_key not base64": (
        "encryption_key",
        "not base64 at all!",
        ["encryption_key", "not a valid Fernet key"],
    ),
    "encryption_key too short": (
        "encryption_key",
        base64.urlsafe_b64encode(b"k" * 16).decode(),
        ["encryption_key", "not a valid Fernet key"],
    ),
    "secret_key not text": ("secret_key", b"\xff\xfe\x00", ["secret_key", "not UTF-8"]),
}


@pytest.mark.parametrize("case", sorted(SECRET_CASES))
def test_bad_secrets_give_one_line(deployment, case):
    tmp_path, env = deployment
    name, content, fragments = SECRET_CASES[case]
    path = tmp_path / "state" / "secrets" / name
    if content is None:
        path.unlink()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    line = assert_one_line_error(run_shim(env), *fragments)
    # The message names the file but never repeats what is in it.
    if content:
        assert str(content).strip() not in line or not str(content).strip()


def test_unreadable_secret(deployment):
    # A directory in place of the file: unreadable even for root, which ignores file modes.
    tmp_path, env = deployment
    path = tmp_path / "state" / "secrets" / "secret_key"
    path.unlink()
    path.mkdir()
    assert_one_line_error(run_shim(env), "cannot read secret secret_key", str(path))


def test_credentials_directory_wins(deployment):
    tmp_path, env = deployment
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    other = base64.urlsafe_b64encode(b"c" * 32).decode()
    (credentials / "encryption_key").write_text(other + "\n")
    env["CREDENTIALS_DIRECTORY"] = str(credentials)
    settings = exported(env)
    assert settings["FIELD_ENCRYPTION_KEY"] == other  # from the credential, newline stripped
    assert settings["SECRET_KEY"] == "s" * 50  # not a credential: from the state directory


def test_production_defaults(deployment):
    tmp_path, env = deployment
    settings = exported(env)
    assert settings["DEBUG"] is False
    assert settings["DATABASES"]["default"] == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(tmp_path / "state" / "bitpoll.sqlite3"),
    }
    assert settings["STATIC_ROOT"] == env["BITPOLL_STATIC_ROOT"]
    assert settings["SESSION_COOKIE_SECURE"] is True and settings["CSRF_COOKIE_SECURE"] is True
    assert settings["CSRF_TRUSTED_ORIGINS"] == ["https://poll.example.org"]
    assert "SECURE_PROXY_SSL_HEADER" not in settings
    assert settings["INSTALLED_APPS_LOCAL"] == [] and settings["PIPELINE_LOCAL"] == {}
    assert settings["LOGGING"]["handlers"]["stderr"]["stream"] == "ext://sys.stderr"
    # Only settings are exported to settings.py: no modules, no helpers.
    assert all(name.isupper() for name in settings["types"])
    assert "EXIT_CONFIG" not in settings["types"]


def test_http_site_has_no_secure_cookies_and_settings_win(deployment):
    tmp_path, env = deployment
    write_settings(
        tmp_path,
        {
            "ALLOWED_HOSTS": ["a"],
            "BASE_URL": "http://127.0.0.1:8000/",
            "DEBUG": True,
            "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
            "CSRF_COOKIE_SECURE": True,
            "SITE_NAME": "Ours",
        },
    )
    settings = exported(env)
    assert settings["SESSION_COOKIE_SECURE"] is False
    assert settings["CSRF_COOKIE_SECURE"] is True
    assert settings["BASE_URL"] == "http://127.0.0.1:8000"  # templates append "/poll/..."
    assert settings["CSRF_TRUSTED_ORIGINS"] == ["http://127.0.0.1:8000"]
    assert settings["DEBUG"] is True and settings["SITE_NAME"] == "Ours"
    assert settings["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert settings["types"]["SECURE_PROXY_SSL_HEADER"] == "tuple"


def test_postgresql_password_from_secret(deployment):
    tmp_path, env = deployment
    database = {"ENGINE": "django.db.backends.postgresql", "NAME": "bitpoll", "HOST": "/run/postgresql"}
    write_settings(tmp_path, {**BASE_SETTINGS, "DATABASES": {"default": database}})
    assert "PASSWORD" not in exported(env)["DATABASES"]["default"]
    (tmp_path / "state" / "secrets" / "db_password").write_text("pg-pass\n")
    assert exported(env)["DATABASES"]["default"] == {**database, "PASSWORD": "pg-pass"}
    (tmp_path / "state" / "secrets" / "db_password").write_text("")
    assert_one_line_error(run_shim(env), "db_password", "is empty")


def test_whitenoise_directly_after_security_middleware(tmp_path, deployment):
    """settings.py appends MIDDLEWARE_LOCAL at the end; the shim places WhiteNoise second instead,
    and the health endpoint right after it, before sessions."""
    _, env = deployment
    package = tmp_path / "bitpoll"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings_local.py").write_text(open(SHIM).read())
    # The tail of Bitpoll's settings.py, verbatim in what matters.
    (package / "settings.py").write_text(textwrap.dedent("""
        MIDDLEWARE = ['django.middleware.security.SecurityMiddleware',
                      'django.contrib.sessions.middleware.SessionMiddleware',
                      'django.middleware.locale.LocaleMiddleware']
        INSTALLED_APPS = ['x']
        PIPELINE = {}
        from .settings_local import *
        INSTALLED_APPS += INSTALLED_APPS_LOCAL
        if "MIDDLEWARE_LOCAL" in locals():
            MIDDLEWARE += MIDDLEWARE_LOCAL
        PIPELINE.update(PIPELINE_LOCAL)
    """))
    write_settings(tmp_path, {**BASE_SETTINGS, "MIDDLEWARE_LOCAL": ["extra.Middleware"]})
    code = "import json, bitpoll.settings as s; print(json.dumps(s.MIDDLEWARE))"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        "django.middleware.security.SecurityMiddleware",
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "bitpoll_health.HealthMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.locale.LocaleMiddleware",
        "extra.Middleware",
    ]


# Through the real wrappers and Bitpoll.


def test_wrappers_report_one_line(make_instance):
    instance = make_instance(start=False)
    instance.layout()
    with open(instance.settings_file, "w") as handle:
        json.dump({"BASE_URL": instance.base_url}, handle)
    for tool, args in (
        ("bitpoll-manage", ["migrate"]),
        ("bitpoll-ops", ["prestart"]),
        ("bitpoll-server", ["--bind", f"127.0.0.1:{instance.port}"]),
    ):
        result = instance.tool(tool, *args, check=False, timeout=60)
        assert_one_line_error(result, "ALLOWED_HOSTS", instance.settings_file)
        # gunicorn loads the app before it listens (--preload), so nothing is left running.
        assert "Booting worker" not in result.stdout + result.stderr


def test_wrapper_reports_bad_secret(make_instance):
    instance = make_instance(start=False)
    instance.layout()
    key = os.path.join(instance.credentials_dir, "encryption_key")
    os.chmod(instance.credentials_dir, 0o700)
    os.chmod(key, 0o600)
    with open(key, "w") as handle:
        handle.write("not-a-fernet-key")
    result = instance.manage("check", check=False)
    assert_one_line_error(result, "encryption_key", key, "Fernet")


def test_secret_references_in_settings(deployment):
    tmp_path, env = deployment
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "email_password").write_text("mail-pass\n")
    env["CREDENTIALS_DIRECTORY"] = str(credentials)
    write_settings(
        tmp_path,
        {
            **BASE_SETTINGS,
            "EMAIL_HOST_PASSWORD": {"_secret": "email_password"},
            "MARKDOWNIFY": {"default": {"x": 1}},
        },
    )
    settings = exported(env)
    assert settings["EMAIL_HOST_PASSWORD"] == "mail-pass"
    assert settings["MARKDOWNIFY"] == {"default": {"x": 1}}  # other objects pass through
    write_settings(tmp_path, {**BASE_SETTINGS, "AUTH_LDAP_BIND_PASSWORD": {"_secret": "ldap_password"}})
    assert_one_line_error(run_shim(env), "secret ldap_password not found")
    write_settings(tmp_path, {**BASE_SETTINGS, "EMAIL_HOST_PASSWORD": {"_secret": "../etc/shadow"}})
    assert_one_line_error(run_shim(env), "EMAIL_HOST_PASSWORD", "lower-case secret name")
