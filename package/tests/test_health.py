"""The health endpoint (package/files/bitpoll_health.py) against a real Bitpoll on the process
testbed: 200 with the database present and migrated; 503 naming the database when its file is
missing (and no empty file created in its place); 503 naming the migrations when one is
pending; a forged Host header gets the health answer but still 400 everywhere else. Requests
from another address go through Django as before (checked with Django's test client)."""

from __future__ import annotations

import json
import os

from test_runtime import fetch


def health(instance, headers=None):
    status, response_headers, body = fetch(instance.base_url + "/-/health", headers=headers)
    return status, response_headers, json.loads(body)


def test_a_served_and_migrated_bitpoll_is_healthy(make_instance):
    instance = make_instance(server=True)
    status, headers, report = health(instance)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert report == {
        "status": "ok",
        "version": instance.build.version,
        "database": "ok",
        "migrations": "complete",
    }
    assert headers["Cache-Control"] == "no-store" and "Set-Cookie" not in headers
    # Any Host header: the probe needs no ALLOWED_HOSTS entry, and the rest of the app still
    # refuses the forged one.
    assert health(instance, {"Host": "evil.example"})[0] == 200
    assert fetch(instance.base_url + "/", headers={"Host": "evil.example"})[0] == 400


def test_a_missing_database_is_named_and_not_created(make_instance):
    instance = make_instance(server=True)
    database = os.path.join(instance.state_dir, "bitpoll.sqlite3")
    os.rename(database, database + ".away")
    try:
        status, _, report = health(instance)
        assert status == 503 and report["status"] == "failing" and report["failing"] == "database"
        assert report["database"] == f"the SQLite file {database} is missing"
        assert not os.path.exists(database), "the probe created an empty database"
    finally:
        os.rename(database + ".away", database)
    assert health(instance)[0] == 200


def test_a_pending_migration_is_named(make_instance):
    instance = make_instance(server=True)
    instance.manage("migrate", "poll", "0019")
    status, _, report = health(instance)
    assert status == 503 and report["failing"] == "migrations" and report["database"] == "ok"
    assert report["migrations"].startswith(
        "1 pending (poll.0020_alter_poll_allow_unauthenticated_vote_changes"
    )
    instance.manage("migrate")
    assert health(instance)[0] == 200


def test_other_addresses_go_through_django(make_instance):
    """The same path from a non-loopback address is Bitpoll's own business: its host check
    (400 for a forged host) and its URLs (no such page)."""
    instance = make_instance()
    code = (
        "from django.test import Client; c = Client(REMOTE_ADDR='192.0.2.7'); "
        "print('STATUS', c.get('/-/health', HTTP_HOST='evil.example').status_code, "
        "c.get('/-/health', HTTP_HOST='127.0.0.1').status_code, "
        "Client(REMOTE_ADDR='127.0.0.1').get('/-/health', HTTP_HOST='evil.example').status_code)"
    )
    output = instance.shell(code)
    line = next(line for line in output.splitlines() if line.startswith("STATUS"))
    assert line.split()[1:] == ["400", "404", "200"], output
