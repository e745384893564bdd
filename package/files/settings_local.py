"""Bitpoll's local settings for the Nix package (installed as ``bitpoll/settings_local.py``).

Bitpoll's ``settings.py`` ends with ``from .settings_local import *`` and then appends
``INSTALLED_APPS_LOCAL``, ``MIDDLEWARE_LOCAL`` and ``PIPELINE_LOCAL``.  This module turns the
deployment's configuration into those settings:

* ``$BITPOLL_SETTINGS_FILE``: a JSON object whose keys are Django/Bitpoll setting names. Every key
  is applied over the production defaults below.  Required: ``ALLOWED_HOSTS`` and ``BASE_URL``.
  A value ``{"_secret": "<name>"}`` stands for the secret ``<name>``, looked up like the ones below
  (for EMAIL_HOST_PASSWORD, AUTH_LDAP_BIND_PASSWORD, OPENID_CLIENT_SECRET and the like).
* Secrets are read from ``$CREDENTIALS_DIRECTORY/<name>`` (systemd credentials) first, then from
  ``$BITPOLL_STATE_DIR/secrets/<name>`` (created by ``bitpoll-ops prestart``): ``secret_key``
  (SECRET_KEY), ``encryption_key`` (FIELD_ENCRYPTION_KEY, a Fernet key) and, for PostgreSQL,
  ``db_password`` when it exists.  Secrets never come from the settings file, because that file
  is world-readable in the Nix store, and they are never copied into the environment.
* ``$BITPOLL_STATE_DIR`` (default ``/var/lib/bitpoll``) holds the SQLite database by default.
* ``$BITPOLL_STATIC_ROOT`` is the package's collected static files, set by the wrappers.
* ``$BITPOLL_METRICS_LISTEN``, when set, turns the Prometheus metrics on (bitpoll_metrics.py).

A missing or malformed setting or secret stops the process with exit status 78 (EX_CONFIG) and
one line on stderr that names it and says what to do.  Raising ImproperlyConfigured instead
would print a traceback from manage.py and make gunicorn respawn its workers forever, so a clean
exit is what gives the journal one readable line.

This file uses the standard library only, so that ``bitpoll-ops`` can load it to find the
database without importing Django.
"""

import base64
import binascii
import json
import os
import re
import sys
from urllib.parse import urlsplit

# The exit status of a configuration error: EX_CONFIG from sysexits.h.  bitpoll-ops passes it on
# without adding a second line.
_EXIT_CONFIG = 78


def _fail(message):
    sys.stderr.write(f"bitpoll: configuration error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(_EXIT_CONFIG)


_STATE_DIR = os.environ.get("BITPOLL_STATE_DIR") or "/var/lib/bitpoll"
if not os.path.isabs(_STATE_DIR):
    _fail(f"BITPOLL_STATE_DIR={_STATE_DIR!r} is not an absolute path; set it to the state directory")


def _load_settings_file():
    path = os.environ.get("BITPOLL_SETTINGS_FILE")
    if not path:
        _fail(
            "BITPOLL_SETTINGS_FILE is not set; point it at the JSON settings file "
            "(the bitpoll-* wrappers and the NixOS module set it)"
        )
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        _fail(f"settings file {path} does not exist; create it or fix BITPOLL_SETTINGS_FILE")
    except OSError as error:
        _fail(f"cannot read settings file {path}: {error.strerror}; check its permissions")
    except UnicodeDecodeError:
        _fail(f"settings file {path} is not UTF-8 text; write it as JSON")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        _fail(
            f"settings file {path} is not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg}); fix the file"
        )
    if not isinstance(data, dict):
        _fail(f"settings file {path} must contain a JSON object of settings, " f"not a {type(data).__name__}")
    return path, data


_SETTINGS_PATH, _SETTINGS = _load_settings_file()


def _where(key):
    return f"setting {key} in {_SETTINGS_PATH}"


# Secrets in the settings file would end up world-readable in the Nix store.
_SECRET_SETTINGS = {
    "SECRET_KEY": "secret_key",
    "FIELD_ENCRYPTION_KEY": "encryption_key",
}
for _key in _SETTINGS:
    if not isinstance(_key, str) or not re.fullmatch(r"[A-Z][A-Z0-9_]*", _key):
        _fail(
            f"key {_key!r} in {_SETTINGS_PATH} is not a setting name (upper-case letters, digits "
            f"and underscores); remove or rename it"
        )
    if _key in _SECRET_SETTINGS:
        _fail(
            f"{_where(_key)} must not be there, the file is not secret; provide it as the "
            f"{_SECRET_SETTINGS[_key]} credential or in {_STATE_DIR}/secrets instead"
        )


def _check_type(key, expected, description):
    value = _SETTINGS[key]
    if not expected(value):
        _fail(f"{_where(key)} must be {description}, not {json.dumps(value)[:60]}")
    return value


def _is_str_list(value):
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# Settings this shim interprets, and the few whose type is worth a clear error before Django
# fails obscurely on them.  Every other key is passed to Django unchecked.
_TYPES = {
    "ALLOWED_HOSTS": (lambda v: _is_str_list(v) and v, "a non-empty list of host names"),
    "BASE_URL": (
        lambda v: isinstance(v, str) and re.fullmatch(r"https?://[^/\s]+(/\S*)?", v),
        'an absolute http:// or https:// URL such as "https://poll.example.org"',
    ),
    "DEBUG": (lambda v: isinstance(v, bool), "true or false"),
    "DATABASES": (
        lambda v: isinstance(v, dict)
        and isinstance(v.get("default"), dict)
        and isinstance(v["default"].get("ENGINE"), str),
        'an object with a "default" database that has an ENGINE',
    ),
    "STATIC_ROOT": (lambda v: isinstance(v, str) and os.path.isabs(v), "an absolute path"),
    "CSRF_TRUSTED_ORIGINS": (_is_str_list, 'a list of origins such as "https://poll.example.org"'),
    "INSTALLED_APPS_LOCAL": (_is_str_list, "a list of application module names"),
    "MIDDLEWARE_LOCAL": (_is_str_list, "a list of middleware class paths"),
    "PIPELINE_LOCAL": (lambda v: isinstance(v, dict), "an object"),
    "SECURE_PROXY_SSL_HEADER": (
        lambda v: _is_str_list(v) and len(v) == 2,
        'a pair such as ["HTTP_X_FORWARDED_PROTO", "https"]',
    ),
    "OPENID_ADMIN_GROUPS": (lambda v: isinstance(v, str), "a regular expression string"),
    "LOGGING": (lambda v: isinstance(v, dict), "a logging configuration object"),
}
for _key, (_predicate, _description) in _TYPES.items():
    if _key in _SETTINGS:
        _check_type(_key, _predicate, _description)

if "PASSWORD" in _SETTINGS.get("DATABASES", {}).get("default", {}):
    _fail(
        f"{_where('DATABASES')} must not contain a PASSWORD, the file is not secret; provide it as "
        f"the db_password credential or in {_STATE_DIR}/secrets/db_password instead"
    )

for _key in ("ALLOWED_HOSTS", "BASE_URL"):
    if _key not in _SETTINGS:
        _fail(
            f"{_where(_key)} is missing; set it (ALLOWED_HOSTS: the host names Bitpoll answers "
            f"to, BASE_URL: the URL users reach it at)"
        )


def _read_secret(name, required=True):
    """Return the secret `name`, from systemd's credentials first, then from the state directory."""
    candidates = []
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        candidates.append(os.path.join(credentials, name))
    candidates.append(os.path.join(_STATE_DIR, "secrets", name))
    for path in candidates:
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            continue
        except OSError as error:
            _fail(f"cannot read secret {name} from {path}: {error.strerror}; check its owner and mode")
        try:
            value = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            _fail(f"secret {name} in {path} is not UTF-8 text; replace the file")
        if not value:
            _fail(
                f"secret {name} in {path} is empty; write the secret into it, or delete it and run "
                f"bitpoll-ops prestart to generate one"
            )
        return path, value
    if required:
        _fail(
            f"secret {name} not found in {' or '.join(candidates)}; provide it as a systemd "
            f"credential or run bitpoll-ops prestart to generate it"
        )
    return None, None


_FERNET_HINT = (
    "generate one with: python3 -c 'import base64,os; "
    "print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
)


def _check_fernet_key(path, key):
    # Upstream's settings_local.sample.py carries a key that decodes fine but is public.
    if key == "this+is+an+example+key+please+generate+one+=":
        _fail(
            f"secret encryption_key in {path} is the public example key of Bitpoll's sample "
            f"settings; {_FERNET_HINT}"
        )
    # The same test as cryptography's Fernet(key), without importing cryptography here.
    try:
        decoded = base64.urlsafe_b64decode(key.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        decoded = b""
    if len(decoded) != 32:
        _fail(
            f"secret encryption_key in {path} is not a valid Fernet key (32 url-safe base64-encoded "
            f"bytes); restore the original key from a backup, or for a new instance {_FERNET_HINT}"
        )


_, SECRET_KEY = _read_secret("secret_key")
_ENCRYPTION_KEY_PATH, FIELD_ENCRYPTION_KEY = _read_secret("encryption_key")
_check_fernet_key(_ENCRYPTION_KEY_PATH, FIELD_ENCRYPTION_KEY)

# Production defaults, each overridable from the settings file.
DEBUG = False
BASE_URL = _SETTINGS["BASE_URL"].rstrip("/")
_BASE = urlsplit(BASE_URL)
_HTTPS = _BASE.scheme == "https"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(_STATE_DIR, "bitpoll.sqlite3"),
    }
}

_static_root = _SETTINGS.get("STATIC_ROOT") or os.environ.get("BITPOLL_STATIC_ROOT")
if not _static_root:
    _fail(
        "BITPOLL_STATIC_ROOT is not set; run Bitpoll through the bitpoll-manage and bitpoll-server "
        "wrappers, or set STATIC_ROOT in the settings file"
    )
STATIC_ROOT = _static_root
STATIC_PRECOMPILER_ROOT = STATIC_ROOT

# A browser only sends cookies marked secure over HTTPS, so mark them when the site is HTTPS.
SESSION_COOKIE_SECURE = _HTTPS
CSRF_COOKIE_SECURE = _HTTPS
SESSION_COOKIE_HTTPONLY = True
# Django checks the Origin header of every POST against this list when the request is HTTPS.
CSRF_TRUSTED_ORIGINS = [f"{_BASE.scheme}://{_BASE.netloc}"]
# Proxy headers are only trusted when the settings file sets SECURE_PROXY_SSL_HEADER.

INSTALLED_APPS_LOCAL = []
PIPELINE_LOCAL = {}
# Django's implicit default, made explicit: it silences the models.W042 warning that
# django-token-bucket would otherwise print on every command, without changing any schema.
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

# WhiteNoise serves the collected static files from the app server, with far-future immutable
# caching for the hashed names listed in staticfiles.json.  It must sit directly after Django's
# SecurityMiddleware: settings.py appends MIDDLEWARE_LOCAL at the very end, where every static
# request would first go through sessions, CSRF, locale (which adds "Vary: Accept-Language" and
# defeats shared caches), the CSP middleware and the HTML minifier.  So the shim rewrites
# upstream's MIDDLEWARE list, which settings.py has already defined when it imports this module.
_WHITENOISE = "whitenoise.middleware.WhiteNoiseMiddleware"
_upstream = sys.modules.get(f"{__package__}.settings") if __package__ else None
_upstream_middleware = getattr(_upstream, "MIDDLEWARE", None)
if isinstance(_upstream_middleware, list):
    MIDDLEWARE = [entry for entry in _upstream_middleware if entry != _WHITENOISE]
    _security = "django.middleware.security.SecurityMiddleware"
    MIDDLEWARE.insert(MIDDLEWARE.index(_security) + 1 if _security in MIDDLEWARE else 0, _WHITENOISE)
    MIDDLEWARE_LOCAL = []
else:
    MIDDLEWARE_LOCAL = [_WHITENOISE]
# The health endpoint (bitpoll_health.py, beside manage.py) answers local probes right after
# WhiteNoise, before sessions, CSRF and the rest: no session, no write, and no Host header check
# for the probe itself (SecurityMiddleware and WhiteNoise, before it, never read the host).
_HEALTH = "bitpoll_health.HealthMiddleware"
if isinstance(_upstream_middleware, list):
    MIDDLEWARE.insert(MIDDLEWARE.index(_WHITENOISE) + 1, _HEALTH)
else:
    MIDDLEWARE_LOCAL.append(_HEALTH)
# Prometheus metrics (bitpoll_metrics.py, docs/monitoring.md), only when bitpoll-server was told
# where to serve them: the middleware goes first, outside SecurityMiddleware, WhiteNoise and the
# health endpoint, so that it counts every response the app gives (health probes and static
# files included, each under a view label of its own). Off, nothing imports prometheus_client.
_METRICS = "bitpoll_metrics.MetricsMiddleware"
if os.environ.get("BITPOLL_METRICS_LISTEN"):
    if isinstance(_upstream_middleware, list):
        MIDDLEWARE.insert(0, _METRICS)
    else:
        MIDDLEWARE_LOCAL.insert(0, _METRICS)
# The collected files are read-only in the store: no runtime compression or refreshing.
WHITENOISE_AUTOREFRESH = False
WHITENOISE_USE_FINDERS = False

# Logs go to stderr, which systemd sends to the journal (it adds the time stamp).  Server errors
# are logged with their traceback instead of being mailed to ADMINS.
ADMINS = []
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"},
    },
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {
        "django": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


# Other secret settings (EMAIL_HOST_PASSWORD, AUTH_LDAP_BIND_PASSWORD, OPENID_CLIENT_SECRET, ...)
# are written in the settings file as {"_secret": "<name>"} and read like the secrets above.
def _resolve(key, value):
    if not (isinstance(value, dict) and "_secret" in value):
        return value
    name = value["_secret"]
    if len(value) != 1 or not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_-]+", name):
        _fail(f'{_where(key)} must be {{"_secret": "<name>"}} with a lower-case secret name')
    return _read_secret(name)[1]


# The settings file wins over every default above.
for _key, _value in _SETTINGS.items():
    globals()[_key] = _resolve(_key, _value)

# Templates append paths to it ("{{ base_url }}/poll/..."), so it never ends with a slash.
BASE_URL = BASE_URL.rstrip("/")
# JSON has no tuples or compiled patterns: convert the settings that need them.
if isinstance(_SETTINGS.get("SECURE_PROXY_SSL_HEADER"), list):
    SECURE_PROXY_SSL_HEADER = tuple(_SETTINGS["SECURE_PROXY_SSL_HEADER"])
if isinstance(_SETTINGS.get("OPENID_ADMIN_GROUPS"), str):
    try:
        OPENID_ADMIN_GROUPS = re.compile(_SETTINGS["OPENID_ADMIN_GROUPS"])
    except re.error as _error:
        _fail(f"{_where('OPENID_ADMIN_GROUPS')} is not a valid regular expression: {_error}")

# The database password is a secret too: PostgreSQL takes it from the db_password secret when one
# exists (a local socket with peer authentication needs none).
if "postgresql" in DATABASES["default"].get("ENGINE", ""):
    _, _password = _read_secret("db_password", required=False)
    if _password is not None:
        DATABASES = {**DATABASES, "default": {**DATABASES["default"], "PASSWORD": _password}}

# Only settings are exported to settings.py's star import, not this module's imports.
__all__ = [_name for _name in globals() if re.fullmatch(r"[A-Z][A-Z0-9_]*", _name)]
