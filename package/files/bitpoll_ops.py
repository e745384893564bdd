"""bitpoll-ops: the server-side operations of a packaged Bitpoll (Python standard library only).

  prestart                     create missing secrets, migrate when the package changed
  backup [--dir D] [--keep N]  write a consistent archive of the database and the secrets
  verify ARCHIVE               check an archive against its manifest
  restore ARCHIVE [--yes]      verify, take a safety backup, restore, migrate when older

It is started by the bitpoll-ops wrapper, which sets DJANGO_SETTINGS_MODULE, BITPOLL_STATE_DIR,
BITPOLL_STATIC_ROOT, BITPOLL_VERSION and BITPOLL_APP_DIR exactly as bitpoll-manage does, and runs
this file with Bitpoll's interpreter: manage.py commands run as `sys.executable manage.py ...`, so
they see the very settings the server sees.  The database location comes from the settings shim
(bitpoll/settings_local.py), which is standard library only too and is loaded here directly.

prestart records the package (app directory, version, Python environment) and the database
settings in $BITPOLL_STATE_DIR/.bitpoll-migrated after a successful `migrate`, and skips `migrate`
while both are unchanged (and, for SQLite, the database file exists).  After replacing a database
behind its back (other than with `restore`, which keeps the marker right), delete that file.

Restore refuses while gunicorn's pid file ($BITPOLL_STATE_DIR/server.pid, written by
bitpoll-server) names a live gunicorn, or a live process /proc hides (ProtectProc=invisible): stop
the server first with `systemctl stop bitpoll.socket bitpoll.service`.

Archive format (a gzip-compressed tar): `manifest.json` first, then `database/bitpoll.sqlite3`
(SQLite backup API) or `database/bitpoll.sql` (pg_dump), `secrets/secret_key` and
`secrets/encryption_key`.  The manifest records the format, the Bitpoll version, the creation time,
the database engine and the sha256 and size of every other member.  The digests detect corruption
and truncation; they are not a signature against someone who can rewrite the whole archive.
Archives contain the secrets: they are written with mode 0600.
"""

import argparse
import base64
import datetime
import gzip
import hashlib
import importlib.util
import io
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import zlib

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
            raise OpsError(f"database engine {engine!r} is not supported by backup and restore "
                           f"(sqlite3 and postgresql are)")
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
    data = {"package": env.package_identity(), "database": database.identity(),
            "migrated": now().isoformat()}
    atomic_write(os.path.join(env.state_dir, MARKER), (json.dumps(data, indent=2) + "\n").encode(),
                 owner_of=env.state_dir)


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
        return f"the package changed ({previous.get('version', '?')} at {previous.get('app_dir', '?')} -> " \
               f"{env.version} at {env.package_identity()['app_dir']})"
    return None


def cmd_prestart(env, _args):
    os.umask(0o077)
    if not os.path.isdir(env.state_dir):
        raise OpsError(f"state directory {env.state_dir} does not exist; create it (systemd's "
                       f"StateDirectory= does) or set BITPOLL_STATE_DIR")
    ensure_secrets(env)
    database = Database(load_settings(env).DATABASES["default"])
    reason = migration_reason(env, database)
    if reason is None:
        say(f"package unchanged since the last successful migration ({env.version}); nothing to migrate")
        return
    migrate(env, database, reason)


# Backup


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def dump_database(database, staging):
    """Copy the live database consistently into `staging`; return the file's path."""
    if database.kind == "sqlite":
        if not os.path.exists(database.name):
            raise OpsError(f"database {database.name} does not exist; nothing to back up")
        target = os.path.join(staging, "bitpoll.sqlite3")
        source = sqlite3.connect(f"file:{urllib.parse.quote(database.name)}?mode=ro", uri=True)
        try:
            copy = sqlite3.connect(target)
            with copy:
                # The online backup API copies a consistent snapshot while the server keeps writing.
                source.backup(copy)
            copy.close()
        finally:
            source.close()
        return target
    target = os.path.join(staging, "bitpoll.sql")
    command = [pg_tool("pg_dump"), "--format=plain", "--no-owner", "--no-privileges", "--clean",
               "--if-exists", "--file", target, *database.pg_args()]
    result = subprocess.run(command, env=database.pg_env(staging), stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise OpsError(f"pg_dump failed: {last_line(result.stderr)}")
    return target


def last_line(text):
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


def staging_dir(env):
    # Staging holds secrets and database copies, so it lives inside the state directory.
    return tempfile.mkdtemp(prefix=".staging-", dir=env.state_dir)


def create_archive(env, directory, prefix=BACKUP_PREFIX):
    """Write a new archive into `directory` atomically and return its path."""
    settings = load_settings(env)
    database = Database(settings.DATABASES["default"])
    os.makedirs(directory, mode=0o700, exist_ok=True)
    created = now()
    final = os.path.join(directory, f"{prefix}{created.strftime('%Y%m%dT%H%M%S.%fZ')}.tar.gz")
    staging = staging_dir(env)
    try:
        try:
            members = {DATABASE_MEMBERS[database.kind]: dump_database(database, staging)}
        except (OSError, sqlite3.Error) as error:
            raise OpsError(f"cannot copy the database {database.name} into {staging}: "
                           f"{getattr(error, 'strerror', None) or error}; earlier backups are untouched") from error
        secret_values = {"secret_key": settings.SECRET_KEY, "encryption_key": settings.FIELD_ENCRYPTION_KEY}
        for name, value in secret_values.items():
            path = os.path.join(staging, name)
            write_private(path, value.encode())
            members[f"secrets/{name}"] = path
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "bitpoll_version": env.version,
            "created": created.isoformat(),
            "database": {"engine": database.kind, "member": DATABASE_MEMBERS[database.kind]},
            "members": {name: {"sha256": sha256_file(path), "size": os.path.getsize(path)}
                        for name, path in members.items()},
        }
        write_archive(final, manifest, members, created)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def write_archive(final, manifest, members, created):
    directory = os.path.dirname(final)
    fd, tmp = tempfile.mkstemp(prefix=".bitpoll-backup-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as raw:
            # The gzip header names the tar inside, not the temporary file.
            with gzip.GzipFile(os.path.basename(final)[:-3], "wb", fileobj=raw,
                               mtime=int(created.timestamp())) as compressed, \
                    tarfile.open(fileobj=compressed, mode="w") as tar:
                data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
                tar.addfile(tar_info("manifest.json", len(data), created), io.BytesIO(data))
                for name, path in members.items():
                    with open(path, "rb") as handle:
                        tar.addfile(tar_info(name, os.path.getsize(path), created), handle)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, final)
        fsync_dir(directory)
    except BaseException as error:
        with_missing_ok(os.unlink, tmp)
        if isinstance(error, OSError):
            raise OpsError(f"cannot write backup into {directory}: {error.strerror or error}; "
                           f"earlier backups are untouched") from error
        raise


def tar_info(name, size, created):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(created.timestamp())
    return info


def rotate(directory, keep, prefix=BACKUP_PREFIX):
    """Delete all but the newest `keep` archives named `prefix`...; return the deleted names."""
    names = sorted(name for name in os.listdir(directory)
                   if ARCHIVE_NAME.fullmatch(name) and name.startswith(prefix))
    doomed = names[:-keep] if keep > 0 else names
    for name in doomed:
        os.unlink(os.path.join(directory, name))
    return doomed


def cmd_backup(env, args):
    os.umask(0o077)
    directory = os.path.abspath(args.dir or env.backup_dir)
    if args.keep < 1:
        raise OpsError("--keep must be at least 1")
    path = create_archive(env, directory)
    say(f"wrote {path} ({os.path.getsize(path)} bytes)")
    for name in rotate(directory, args.keep):
        say(f"removed old backup {name} (keeping the newest {args.keep})")


# Verify and restore


def verify_archive(path, extract_to=None):
    """Check the archive against its manifest and return the manifest.

    With `extract_to`, every member is also written there while it is checked, so what restore
    uses is exactly what was verified.
    """
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise OpsError(f"cannot open {path}: {error.strerror}") from error
    try:
        # First the whole gzip stream: its CRC and length catch a flipped byte or a cut before
        # anything is parsed, so damage is reported as such and not as a confusing manifest.
        with handle, gzip.GzipFile(fileobj=handle, mode="rb") as stream:
            while stream.read(CHUNK):
                pass
    except (EOFError, zlib.error, OSError) as error:
        raise OpsError(f"{path} is corrupt or truncated ({error}); use another backup") from error
    try:
        with open(path, "rb") as handle, tarfile.open(fileobj=handle, mode="r:gz") as tar:
            manifest = read_manifest(path, tar)
            expected = manifest["members"]
            seen = set()
            # tar.next() streams on after the manifest; iterating `tar` would yield it again.
            while (member := tar.next()) is not None:
                if member.name not in expected:
                    raise OpsError(f"{path}: member {member.name!r} is not listed in the manifest; "
                                   f"the archive was altered")
                if member.name in seen or not member.isfile():
                    raise OpsError(f"{path}: member {member.name!r} is duplicated or not a regular file")
                seen.add(member.name)
                digest, size = copy_member(tar, member, extract_to)
                if digest != expected[member.name]["sha256"] or size != expected[member.name]["size"]:
                    raise OpsError(f"{path}: member {member.name} does not match its sha256 in the "
                                   f"manifest; the archive is corrupt")
            missing = sorted(set(expected) - seen)
            if missing:
                raise OpsError(f"{path}: members missing from the archive: {', '.join(missing)}; "
                               f"it is truncated or incomplete")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise OpsError(f"{path} is corrupt or truncated ({error}); use another backup") from error
    return manifest


def read_manifest(path, tar):
    first = tar.next()
    if first is None or first.name != "manifest.json" or not first.isfile():
        raise OpsError(f"{path} is not a Bitpoll backup: its first member is not manifest.json")
    if first.size > MAX_MANIFEST_BYTES:
        raise OpsError(f"{path}: manifest.json is implausibly large; not a Bitpoll backup")
    try:
        manifest = json.loads(tar.extractfile(first).read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise OpsError(f"{path}: manifest.json is not valid JSON ({error})") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise OpsError(f"{path} is not a Bitpoll backup (manifest format is not {FORMAT!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise OpsError(f"{path} has backup format version {manifest.get('format_version')!r}; this "
                       f"bitpoll-ops reads version {FORMAT_VERSION}")
    members = manifest.get("members")
    database = manifest.get("database")
    valid = (
        isinstance(members, dict)
        and all(name in ALLOWED_MEMBERS and name != "manifest.json" for name in members)
        and all(isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                and isinstance(entry.get("size"), int) for entry in members.values())
        and isinstance(database, dict)
        and DATABASE_MEMBERS.get(database.get("engine")) == database.get("member")
        and database.get("member") in members
        and all(f"secrets/{name}" in members for name in SECRET_NAMES)
        and isinstance(manifest.get("bitpoll_version"), str)
        and isinstance(manifest.get("created"), str)
    )
    if not valid:
        raise OpsError(f"{path}: manifest.json is incomplete or names unexpected members; the "
                       f"archive is damaged or foreign")
    return manifest


def copy_member(tar, member, extract_to):
    digest = hashlib.sha256()
    size = 0
    source = tar.extractfile(member)
    target = None
    if extract_to is not None:
        fd = os.open(os.path.join(extract_to, member.name.replace("/", "__")),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        target = os.fdopen(fd, "wb")
    try:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
            if target is not None:
                target.write(chunk)
    finally:
        if target is not None:
            target.close()
    return digest.hexdigest(), size


def cmd_verify(env, args):
    manifest = verify_archive(args.archive)
    say(f"{args.archive} is intact: Bitpoll {manifest['bitpoll_version']}, "
        f"{manifest['database']['engine']} database, created {manifest['created']}")


def version_key(version):
    parts = re.findall(r"\d+", version)
    return tuple(int(part) for part in parts) if parts else None


def running_server(env, proc="/proc"):
    """(pid, confirmed) of a bitpoll-server that may run on this state directory, or None.

    gunicorn's pid file names the server.  A pid without a process is a stale file.  A process
    whose command line is visible and does not mention gunicorn has merely been given a recycled
    pid.  But /proc hides other users' processes under ProtectProc=invisible or hidepid, so a
    process that exists (kill(pid, 0) succeeds or says EPERM) without a readable command line
    counts as the server, unconfirmed: restoring under a live server would corrupt its database.
    """
    path = os.path.join(env.state_dir, "server.pid")
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise OpsError(f"cannot read {path} to tell whether bitpoll-server runs: {error.strerror}; "
                       f"run restore as the service's user")
    if not text.isdigit() or int(text) <= 0:
        return None
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # it exists, as another user's process
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as handle:
            cmdline = handle.read()
    except OSError:
        return pid, False
    return (pid, True) if b"gunicorn" in cmdline else None


# Stopping only the service is not enough: its socket would start it again on the next request.
STOP_COMMAND = "systemctl stop bitpoll.socket bitpoll.service"


def cmd_restore(env, args):
    os.umask(0o077)
    server = running_server(env)
    if server is not None:
        pid, confirmed = server
        pid_file = os.path.join(env.state_dir, "server.pid")
        if confirmed:
            raise OpsError(f"bitpoll-server is running (pid {pid}, {pid_file}); stop it first "
                           f"({STOP_COMMAND}), then restore")
        raise OpsError(f"bitpoll-server may be running: process {pid} from {pid_file} exists but /proc "
                       f"does not show it; stop it first ({STOP_COMMAND}), or delete {pid_file} if "
                       f"that process is not the server, then restore")
    staging = staging_dir(env)
    try:
        # Everything that can refuse the archive comes before the first change.
        manifest = verify_archive(args.archive, extract_to=staging)
        archive_version = manifest["bitpoll_version"]
        older = False
        if archive_version != env.version:
            ours, theirs = version_key(env.version), version_key(archive_version)
            if ours is None or theirs is None or theirs > ours:
                raise OpsError(f"{args.archive} is from Bitpoll {archive_version}, this is {env.version}; "
                               f"restore it with Bitpoll {archive_version} or newer")
            older = True
        if not args.yes:
            confirm(f"replace the database and secrets of {env.state_dir} with {args.archive} "
                    f"(Bitpoll {archive_version}, created {manifest['created']})?")
        # On a new machine there are no secrets yet, and the settings cannot load without them:
        # the archive's are the right ones.
        install_missing_secrets(env, staging)
        database = Database(load_settings(env).DATABASES["default"])
        if manifest["database"]["engine"] != database.kind:
            raise OpsError(f"{args.archive} holds a {manifest['database']['engine']} database but this "
                           f"instance uses {database.kind}; restore it into a matching configuration")
        backup_dir = os.path.abspath(args.backup_dir or env.backup_dir)
        safety = None
        if database.kind == "postgresql" or os.path.exists(database.name):
            safety = create_archive(env, backup_dir, prefix=SAFETY_PREFIX)
            say(f"safety backup of the current state: {safety}")
        else:
            say("no current database; no safety backup needed")
        staged = os.path.join(staging, manifest["database"]["member"].replace("/", "__"))
        try:
            restore_database(env, database, staged, staging)
            restore_secrets(env, staging)
        except (OpsError, OSError) as error:
            # The database and the secrets belong together: a half-done restore leaves encrypted
            # fields unreadable, so say how to get back to where we were.
            message = str(error) if isinstance(error, OpsError) else f"{error.strerror or error} ({error.filename})"
            back = (f"bitpoll-ops restore {safety} --yes" if safety else "the previous state is unknown")
            raise OpsError(f"restore failed midway: {message}; to go back: {back}") from error
        say(f"restored the database and secrets from {args.archive}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if older:
        migrate(env, database, f"the archive is from Bitpoll {archive_version}, older than {env.version}")
    else:
        # The restored database is at this package's schema; record it so the next start skips.
        write_marker(env, database)


def install_missing_secrets(env, staging):
    for name in SECRET_NAMES:
        if read_secret(env, name)[0] is None:
            ensure_private_dir(env.secrets_dir, owner_of=env.state_dir)
            with open(os.path.join(staging, f"secrets__{name}"), "rb") as handle:
                atomic_write(os.path.join(env.secrets_dir, name), handle.read(), owner_of=env.state_dir)
            say(f"no current secret {name}: installed the archive's")


def confirm(question):
    if not sys.stdin.isatty():
        raise OpsError("restore replaces the live data; pass --yes to confirm when not on a terminal")
    answer = input(f"bitpoll-ops: {question} [type yes] ")
    if answer.strip().lower() != "yes":
        raise OpsError("restore cancelled; nothing was changed")


def restore_database(env, database, staged, staging):
    if database.kind == "sqlite":
        directory = os.path.dirname(database.name) or "."
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".bitpoll-restore-", suffix=".sqlite3", dir=directory)
        try:
            with os.fdopen(fd, "wb") as target, open(staged, "rb") as source:
                shutil.copyfileobj(source, target, CHUNK)
                target.flush()
                os.fsync(target.fileno())
            chown_like(tmp, database.name if os.path.exists(database.name) else env.state_dir)
            # A journal or WAL left next to the old file would be replayed into the new one.
            for suffix in ("-wal", "-shm", "-journal"):
                with_missing_ok(os.unlink, database.name + suffix)
            os.replace(tmp, database.name)
        except BaseException:
            with_missing_ok(os.unlink, tmp)
            raise
        fsync_dir(directory)
        return
    command = [pg_tool("psql"), "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1", "--single-transaction",
               "--file", staged, *database.pg_args()]
    result = subprocess.run(command, env=database.pg_env(staging), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise OpsError(f"psql could not load the dump, the database was left as it was: "
                       f"{last_line(result.stderr)}")


def restore_secrets(env, staging):
    ensure_private_dir(env.secrets_dir, owner_of=env.state_dir)
    for name in SECRET_NAMES:
        with open(os.path.join(staging, f"secrets__{name}"), "rb") as handle:
            value = handle.read()
        atomic_write(os.path.join(env.secrets_dir, name), value, owner_of=env.state_dir)
        if env.credentials:
            credential = os.path.join(env.credentials, name)
            try:
                with open(credential, "rb") as handle:
                    current = handle.read().strip()
            except FileNotFoundError:
                continue
            if current != value.strip():
                say(f"warning: the service reads {name} from the credential {credential}, which differs "
                    f"from the restored one (now in {env.secrets_dir}); update the credential's source"
                    + (" or encrypted fields stay unreadable" if name == "encryption_key" else ""))


# Command line


def parser():
    top = argparse.ArgumentParser(prog="bitpoll-ops", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("prestart", help="create missing secrets; migrate when the package changed")
    backup = commands.add_parser("backup", help="write a backup archive")
    backup.add_argument("--dir", help="where to write it (default: $BITPOLL_BACKUP_DIR or $STATE/backups)")
    backup.add_argument("--keep", type=int, default=7, help="how many backups to keep (default: 7)")
    verify = commands.add_parser("verify", help="check an archive against its manifest")
    verify.add_argument("archive")
    restore = commands.add_parser("restore", help="restore an archive over the current state")
    restore.add_argument("archive")
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    restore.add_argument("--backup-dir", help="where the safety backup goes (default: the backup directory)")
    return top


COMMANDS = {"prestart": cmd_prestart, "backup": cmd_backup, "verify": cmd_verify, "restore": cmd_restore}


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        COMMANDS[args.command](Environment(), args)
    except OpsError as error:
        print(f"bitpoll-ops: error: {error}", file=sys.stderr, flush=True)
        return 1
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        print(f"bitpoll-ops: error: {error.strerror or error}{where}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("bitpoll-ops: error: interrupted", file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
