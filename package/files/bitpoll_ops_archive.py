"""Backup archives (bitpoll_ops.py is the program): writing one consistently and atomically,
rotating them, and verifying one against its manifest."""

import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import urllib.parse
import zlib

from bitpoll_ops_base import (
    ALLOWED_MEMBERS,
    ARCHIVE_NAME,
    BACKUP_PREFIX,
    CHUNK,
    DATABASE_MEMBERS,
    Database,
    FORMAT,
    FORMAT_VERSION,
    MAX_MANIFEST_BYTES,
    OpsError,
    SECRET_NAMES,
    fsync_dir,
    load_settings,
    now,
    pg_tool,
    say,
    sha256_file,
    with_missing_ok,
    write_private,
)

# Backup


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
    command = [
        pg_tool("pg_dump"),
        "--format=plain",
        "--no-owner",
        "--no-privileges",
        "--clean",
        "--if-exists",
        "--file",
        target,
        *database.pg_args(),
    ]
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
            raise OpsError(
                f"cannot copy the database {database.name} into {staging}: "
                f"{getattr(error, 'strerror', None) or error}; earlier backups are untouched"
            ) from error
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
            "members": {
                name: {"sha256": sha256_file(path), "size": os.path.getsize(path)}
                for name, path in members.items()
            },
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
            with gzip.GzipFile(
                os.path.basename(final)[:-3], "wb", fileobj=raw, mtime=int(created.timestamp())
            ) as compressed, tarfile.open(fileobj=compressed, mode="w") as tar:
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
            raise OpsError(
                f"cannot write backup into {directory}: {error.strerror or error}; "
                f"earlier backups are untouched"
            ) from error
        raise


def tar_info(name, size, created):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(created.timestamp())
    return info


def rotate(directory, keep, prefix=BACKUP_PREFIX):
    """Delete all but the newest `keep` archives named `prefix`...; return the deleted names."""
    names = sorted(
        name for name in os.listdir(directory) if ARCHIVE_NAME.fullmatch(name) and name.startswith(prefix)
    )
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
                    raise OpsError(
                        f"{path}: member {member.name!r} is not listed in the manifest; "
                        f"the archive was altered"
                    )
                if member.name in seen or not member.isfile():
                    raise OpsError(f"{path}: member {member.name!r} is duplicated or not a regular file")
                seen.add(member.name)
                digest, size = copy_member(tar, member, extract_to)
                if digest != expected[member.name]["sha256"] or size != expected[member.name]["size"]:
                    raise OpsError(
                        f"{path}: member {member.name} does not match its sha256 in the "
                        f"manifest; the archive is corrupt"
                    )
            missing = sorted(set(expected) - seen)
            if missing:
                raise OpsError(
                    f"{path}: members missing from the archive: {', '.join(missing)}; "
                    f"it is truncated or incomplete"
                )
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
        raise OpsError(
            f"{path} has backup format version {manifest.get('format_version')!r}; this "
            f"bitpoll-ops reads version {FORMAT_VERSION}"
        )
    members = manifest.get("members")
    database = manifest.get("database")
    valid = (
        isinstance(members, dict)
        and all(name in ALLOWED_MEMBERS and name != "manifest.json" for name in members)
        and all(
            isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("size"), int)
            for entry in members.values()
        )
        and isinstance(database, dict)
        and DATABASE_MEMBERS.get(database.get("engine")) == database.get("member")
        and database.get("member") in members
        and all(f"secrets/{name}" in members for name in SECRET_NAMES)
        and isinstance(manifest.get("bitpoll_version"), str)
        and isinstance(manifest.get("created"), str)
    )
    if not valid:
        raise OpsError(
            f"{path}: manifest.json is incomplete or names unexpected members; the "
            f"archive is damaged or foreign"
        )
    return manifest


def copy_member(tar, member, extract_to):
    digest = hashlib.sha256()
    size = 0
    source = tar.extractfile(member)
    target = None
    if extract_to is not None:
        fd = os.open(
            os.path.join(extract_to, member.name.replace("/", "__")),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL,
            0o600,
        )
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
    say(
        f"{args.archive} is intact: Bitpoll {manifest['bitpoll_version']}, "
        f"{manifest['database']['engine']} database, created {manifest['created']}"
    )
