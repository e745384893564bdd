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
import os
import sys

# The program's parts sit beside it in the app directory, which Python puts first on sys.path.
from bitpoll_ops_archive import cmd_backup, cmd_verify
from bitpoll_ops_restore import cmd_restore
from bitpoll_ops_base import (
    Database,
    Environment,
    OpsError,
    ensure_secrets,
    load_settings,
    migrate,
    migration_reason,
    say,
)


def cmd_prestart(env, _args):
    os.umask(0o077)
    if not os.path.isdir(env.state_dir):
        raise OpsError(
            f"state directory {env.state_dir} does not exist; create it (systemd's "
            f"StateDirectory= does) or set BITPOLL_STATE_DIR"
        )
    ensure_secrets(env)
    database = Database(load_settings(env).DATABASES["default"])
    reason = migration_reason(env, database)
    if reason is None:
        say(f"package unchanged since the last successful migration ({env.version}); nothing to migrate")
        return
    migrate(env, database, reason)


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
