"""The ops tool's foundations (bitpoll_ops.py is the program): its constants and error, the
environment and settings it runs with, the database, careful file writes, the secrets and the
migrations."""

import base64
import datetime
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile

FORMAT = "bitpoll-backup"
FORMAT_VERSION = 1
EXIT_CONFIG = 78  # the settings shim's exit status for a configuration error
MARKER = ".bitpoll-migrated"
SECRET_NAMES = ("secret_key", "encryption_key")
DATABASE_MEMBERS = {"sqlite": "database/bitpoll.sqlite3", "postgresql": "database/bitpoll.sql"}
ALLOWED_MEMBERS = {"manifest.json", *DATABASE_MEMBERS.values(), *(f"secrets/{n}" for n in SECRET_NAMES)}
BACKUP_PREFIX = "bitpoll-backup-"
SAFETY_PREFIX = "bitpoll-pre-restore-"
ARCHIVE_NAME = re.compile(r"(bitpoll-backup|bitpoll-pre-restore)-\d{8}T\d{6}\.\d{6}Z\.tar\.gz")
MAX_MANIFEST_BYTES = 1 << 20
CHUNK = 1 << 20


class OpsError(Exception):
    """A failure with a one-line message for the operator; nothing is printed besides it."""


def say(message):
    print(f"bitpoll-ops: {message}", flush=True)


# Environment and settings


class Environment:
    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        self.state_dir = environ.get("BITPOLL_STATE_DIR") or "/var/lib/bitpoll"
        self.app_dir = environ.get("BITPOLL_APP_DIR") or os.path.dirname(os.path.abspath(__file__))
        self.version = environ.get("BITPOLL_VERSION") or "unknown"
        self.credentials = environ.get("CREDENTIALS_DIRECTORY") or None
        self.backup_dir = environ.get("BITPOLL_BACKUP_DIR") or os.path.join(self.state_dir, "backups")
        if not os.path.isabs(self.state_dir):
            raise OpsError(f"BITPOLL_STATE_DIR={self.state_dir!r} is not an absolute path")

    @property
    def secrets_dir(self):
        return os.path.join(self.state_dir, "secrets")

    def package_identity(self):
        # The app directory is a store path that changes with every rebuild of Bitpoll; sys.prefix
        # is the Python environment, which changes when a dependency does.
        return {"app_dir": os.path.realpath(self.app_dir), "version": self.version, "python": sys.prefix}


def load_settings(env):
    """Run the settings shim and return its module; a bad setting exits 78 with the shim's line."""
    path = os.path.join(env.app_dir, "bitpoll", "settings_local.py")
    spec = importlib.util.spec_from_file_location("_bitpoll_settings_for_ops", path)
    if spec is None or not os.path.exists(path):
        raise OpsError(f"settings shim {path} not found; is BITPOLL_APP_DIR the package's app directory?")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Database:
    def __init__(self, config):
        engine = config.get("ENGINE", "")
        if engine.endswith("sqlite3"):
            self.kind = "sqlite"
        elif "postgresql" in engine:
            self.kind = "postgresql"
        else:
            raise OpsError(
                f"database engine {engine!r} is not supported by backup and restore "
                f"(sqlite3 and postgresql are)"
            )
        self.config = config
        self.name = str(config.get("NAME") or "")

    def identity(self):
        return {key: str(self.config.get(key) or "") for key in ("ENGINE", "NAME", "HOST", "PORT")}

    # PostgreSQL client arguments; the password goes through a private PGPASSFILE, never argv or env.
    def pg_args(self):
        args = []
        for key, option in (("HOST", "--host"), ("PORT", "--port"), ("USER", "--username")):
            if self.config.get(key):
                args += [option, str(self.config[key])]
        return args + ["--dbname", self.name]

    def pg_env(self, scratch_dir):
        env = dict(os.environ)
        env.pop("PGPASSWORD", None)
        password = self.config.get("PASSWORD")
        if password:
            passfile = os.path.join(scratch_dir, "pgpass")
            escaped = str(password).replace("\\", "\\\\").replace(":", "\\:")
            write_private(passfile, f"*:*:*:*:{escaped}\n".encode())
            env["PGPASSFILE"] = passfile
        return env


def pg_tool(name):
    path = shutil.which(name)
    if path is None:
        raise OpsError(f"{name} not found in PATH; install the PostgreSQL client matching the server")
    return path


# Files


def write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, data, owner_of=None):
    """Write `data` to `path` (mode 0600) via a temporary file in the same directory and a rename."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        chown_like(tmp, owner_of)
        os.replace(tmp, path)
    except BaseException:
        with_missing_ok(os.unlink, tmp)
        raise
    fsync_dir(directory)


def with_missing_ok(function, path):
    try:
        function(path)
    except FileNotFoundError:
        pass


def chown_like(path, reference):
    """Give `path` the owner of `reference`, so that files root writes stay the service's."""
    if reference is None or os.geteuid() != 0:
        return
    info = os.stat(reference)
    os.chown(path, info.st_uid, info.st_gid)


def ensure_private_dir(path, owner_of=None):
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)
        chown_like(path, owner_of)
        say(f"created {path} (mode 0700)")
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:
        os.chmod(path, 0o700)
        say(f"tightened {path} from mode {mode:04o} to 0700")


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Secrets


def generate_secret(name):
    if name == "encryption_key":
        # A Fernet key: 32 random bytes, url-safe base64.
        return base64.urlsafe_b64encode(os.urandom(32))
    return secrets.token_urlsafe(48).encode()


def read_secret(env, name):
    """The secret `name` as the settings shim finds it: credentials first, then the state directory."""
    for directory in filter(None, (env.credentials, env.secrets_dir)):
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as handle:
                return path, handle.read().strip()
        except FileNotFoundError:
            continue
    return None, None


def ensure_secrets(env):
    ensure_private_dir(env.secrets_dir, owner_of=env.state_dir)
    for name in SECRET_NAMES:
        if env.credentials and os.path.exists(os.path.join(env.credentials, name)):
            continue
        path = os.path.join(env.secrets_dir, name)
        if os.path.exists(path):
            mode = os.stat(path).st_mode & 0o777
            if mode & 0o077:
                os.chmod(path, 0o600)
                say(f"tightened {path} from mode {mode:04o} to 0600")
            continue
        atomic_write(path, generate_secret(name), owner_of=env.state_dir)
        say(f"created secret {name} in {env.secrets_dir} (mode 0600)")


# Migrations


def manage(env, *args, capture=False):
    """Run manage.py with this interpreter and environment, exactly as bitpoll-manage would."""
    command = [sys.executable, os.path.join(env.app_dir, "manage.py"), *args]
    child_env = dict(os.environ, DJANGO_SETTINGS_MODULE="bitpoll.settings")
    result = subprocess.run(command, env=child_env, stdout=subprocess.PIPE if capture else None, text=True)
    if result.returncode == EXIT_CONFIG:
        # The shim has printed its one line already.
        raise SystemExit(EXIT_CONFIG)
    if result.returncode != 0:
        raise OpsError(f"manage.py {' '.join(args)} failed with exit status {result.returncode}")
    return result.stdout


def read_marker(env):
    try:
        with open(os.path.join(env.state_dir, MARKER), encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        return None


def write_marker(env, database):
    data = {"package": env.package_identity(), "database": database.identity(), "migrated": now().isoformat()}
    atomic_write(
        os.path.join(env.state_dir, MARKER),
        (json.dumps(data, indent=2) + "\n").encode(),
        owner_of=env.state_dir,
    )


def migrate(env, database, reason):
    say(f"running migrations: {reason}")
    manage(env, "migrate", "--noinput")
    # Written only after success: a crash or kill during migrate leaves the old marker, so the
    # next start migrates again and completes the work (each migration is its own transaction).
    write_marker(env, database)
    say("migrations complete; recorded the package in " + os.path.join(env.state_dir, MARKER))


def migration_reason(env, database):
    marker = read_marker(env)
    if database.kind == "sqlite" and not os.path.exists(database.name):
        return f"database {database.name} does not exist yet"
    if marker is None:
        return "no successful migration recorded"
    if marker.get("database") != database.identity():
        return "the database configuration changed"
    if marker.get("package") != env.package_identity():
        previous = marker.get("package", {})
        return (
            f"the package changed ({previous.get('version', '?')} at {previous.get('app_dir', '?')} -> "
            f"{env.version} at {env.package_identity()['app_dir']})"
        )
    return None


def now():
    """The current time in UTC: archive names and manifests use it."""
    return datetime.datetime.now(datetime.timezone.utc)
