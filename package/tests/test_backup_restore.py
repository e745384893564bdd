"""Backup, wipe, restore and compare against a real Bitpoll (BITPOLL_SRC), on SQLite and PostgreSQL."""

import hashlib
import os
import re
import urllib.request

import pytest

from bitpoll_data import seed, snapshot
from test_ops_unit import flip_byte, rewrite, truncate


def archive_of(result):
    match = re.search(r"wrote (\S+\.tar\.gz)", result.stdout)
    assert match, result.stdout
    return match.group(1)


def wipe(instance):
    """Lose the database and the generated secrets, as a broken disk would."""
    if instance.db == "postgresql":
        instance.shell(
            "from django.db import connection\n"
            "with connection.cursor() as cursor:\n"
            "    cursor.execute('DROP SCHEMA public CASCADE')\n"
            "    cursor.execute('CREATE SCHEMA public')"
        )
    else:
        os.unlink(os.path.join(instance.state_dir, "bitpoll.sqlite3"))
    for name in ("secret_key", "encryption_key"):
        os.unlink(os.path.join(instance.state_dir, "secrets", name))


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_backup_wipe_restore_compare(make_instance, db):
    # Generated secrets live in the state directory, so the archive's copy is what brings the
    # encryption key back.
    instance = make_instance(db=db, credentials=False, server=True)
    seed(instance, "one")
    before = snapshot(instance)
    assert len(before["votes"]) == 2 and len(before["vote_choices"]) == 6
    archive = archive_of(instance.ops("backup", "--keep", "3"))  # online: the server is running
    assert os.path.dirname(archive) == os.path.join(instance.state_dir, "backups")
    assert "is intact" in instance.ops("verify", archive).stdout
    instance.stop_server()
    # Over existing data (for PostgreSQL: the dump's DROP ... IF EXISTS statements replace it).
    seed(instance, "two")
    instance.ops("restore", archive, "--yes")
    assert snapshot(instance) == before
    wipe(instance)
    assert instance.manage("check", check=False).returncode == 78  # no secrets: will not start
    result = instance.ops("restore", archive, "--yes")
    assert "no current secret encryption_key: installed the archive's" in result.stdout
    assert snapshot(instance) == before  # encrypted CalDAV URLs readable again
    instance.start_server()
    with urllib.request.urlopen(instance.base_url + "/poll/lunch-one/", timeout=10) as response:
        page = response.read().decode()
    assert response.status == 200 and "carol" in page and "pizza" in page


def test_restore_over_existing_data_leaves_safety_backup(make_instance):
    instance = make_instance()
    seed(instance, "one")
    archive = archive_of(instance.ops("backup"))
    before = snapshot(instance)
    seed(instance, "two")
    with_two = snapshot(instance)
    result = instance.ops("restore", archive, "--yes")
    assert snapshot(instance) == before
    safety = re.search(r"safety backup of the current state: (\S+)", result.stdout).group(1)
    assert os.path.basename(safety).startswith("bitpoll-pre-restore-")
    assert "is intact" in instance.ops("verify", safety).stdout
    # The safety backup is a real backup: restoring it brings the second poll back.
    instance.ops("restore", safety, "--yes")
    assert snapshot(instance) == with_two


def test_damaged_archives_are_refused_and_live_data_unchanged(make_instance, tmp_path):
    instance = make_instance()
    seed(instance, "one")
    good = archive_of(instance.ops("backup"))
    seed(instance, "two")
    before = snapshot(instance)
    database = os.path.join(instance.state_dir, "bitpoll.sqlite3")
    digest = hashlib.sha256(open(database, "rb").read()).hexdigest()
    backups = sorted(os.listdir(os.path.dirname(good)))
    damaged = {
        "byte flipped": (flip_byte(good, tmp_path / "flipped.tar.gz", os.path.getsize(good) // 2), "corrupt"),
        "truncated": (
            truncate(good, tmp_path / "truncated.tar.gz", os.path.getsize(good) - 100),
            "truncated",
        ),
        "wrong manifest": (
            rewrite(
                good,
                tmp_path / "manifest.tar.gz",
                manifest_edit=lambda m: m["members"]["secrets/secret_key"].update(sha256="0" * 64),
            ),
            "does not match its sha256",
        ),
    }
    for name, (path, fragment) in damaged.items():
        for command in (["verify", path], ["restore", path, "--yes"]):
            result = instance.ops(*command, check=False)
            assert result.returncode == 1, (name, result.stdout)
            assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
                name,
                result.stderr,
            )
    assert hashlib.sha256(open(database, "rb").read()).hexdigest() == digest
    assert sorted(os.listdir(os.path.dirname(good))) == backups  # not even a safety backup
    assert snapshot(instance) == before
