"""Restoring an archive (bitpoll_ops.py is the program): never under a running server, never
without a safety backup, and with the way back named when it fails midway."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

from bitpoll_ops_archive import (
    create_archive,
    last_line,
    staging_dir,
    verify_archive,
)
from bitpoll_ops_base import (
    CHUNK,
    Database,
    OpsError,
    SAFETY_PREFIX,
    SECRET_NAMES,
    atomic_write,
    chown_like,
    ensure_private_dir,
    fsync_dir,
    load_settings,
    migrate,
    pg_tool,
    read_secret,
    say,
    with_missing_ok,
    write_marker,
)


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
        raise OpsError(
            f"cannot read {path} to tell whether bitpoll-server runs: {error.strerror}; "
            f"run restore as the service's user"
        )
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
            raise OpsError(
                f"bitpoll-server is running (pid {pid}, {pid_file}); stop it first "
                f"({STOP_COMMAND}), then restore"
            )
        raise OpsError(
            f"bitpoll-server may be running: process {pid} from {pid_file} exists but /proc "
            f"does not show it; stop it first ({STOP_COMMAND}), or delete {pid_file} if "
            f"that process is not the server, then restore"
        )
    staging = staging_dir(env)
    try:
        # Everything that can refuse the archive comes before the first change.
        manifest = verify_archive(args.archive, extract_to=staging)
        archive_version = manifest["bitpoll_version"]
        older = False
        if archive_version != env.version:
            ours, theirs = version_key(env.version), version_key(archive_version)
            if ours is None or theirs is None or theirs > ours:
                raise OpsError(
                    f"{args.archive} is from Bitpoll {archive_version}, this is {env.version}; "
                    f"restore it with Bitpoll {archive_version} or newer"
                )
            older = True
        if not args.yes:
            confirm(
                f"replace the database and secrets of {env.state_dir} with {args.archive} "
                f"(Bitpoll {archive_version}, created {manifest['created']})?"
            )
        # On a new machine there are no secrets yet, and the settings cannot load without them:
        # the archive's are the right ones.
        install_missing_secrets(env, staging)
        database = Database(load_settings(env).DATABASES["default"])
        if manifest["database"]["engine"] != database.kind:
            raise OpsError(
                f"{args.archive} holds a {manifest['database']['engine']} database but this "
                f"instance uses {database.kind}; restore it into a matching configuration"
            )
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
            message = (
                str(error) if isinstance(error, OpsError) else f"{error.strerror or error} ({error.filename})"
            )
            back = f"bitpoll-ops restore {safety} --yes" if safety else "the previous state is unknown"
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
    command = [
        pg_tool("psql"),
        "--no-psqlrc",
        "--quiet",
        "--set",
        "ON_ERROR_STOP=1",
        "--single-transaction",
        "--file",
        staged,
        *database.pg_args(),
    ]
    result = subprocess.run(
        command, env=database.pg_env(staging), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    if result.returncode != 0:
        raise OpsError(
            f"psql could not load the dump, the database was left as it was: " f"{last_line(result.stderr)}"
        )


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
                say(
                    f"warning: the service reads {name} from the credential {credential}, which differs "
                    f"from the restored one (now in {env.secrets_dir}); update the credential's source"
                    + (" or encrypted fields stay unreadable" if name == "encryption_key" else "")
                )
