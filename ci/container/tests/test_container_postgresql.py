"""Bitpoll with `database.createLocally`: PostgreSQL on the same machine, peer authentication
over its unix socket, the service (PrivateNetwork=, PrivateUsers=, AF_UNIX only) connecting as
the role named like its user. Debian's server stands in for services.postgresql; the container
testbed arranges it as NixOS does (postgresql.target after the role and database exist).

This container also takes its secrets the other way the module offers: files outside the store
(secretKeyFile, encryptionKeyFile) passed with LoadCredential=, instead of secrets generated in
the state directory."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from nspawn_support import container_listeners, create_poll, journal, require_host, sh, show, testbed


@pytest.fixture(scope="module")
def pg_container(tmp_path_factory):
    src = os.environ.get("BITPOLL_SRC")
    if not src:
        pytest.skip(
            "BITPOLL_SRC is not set (a Bitpoll 0.11 checkout is needed to run Bitpoll in the container)"
        )
    require_host()
    box = testbed.Container(tmp_path_factory.mktemp("pg-container") / "state", stop_with_caller=True)
    info = box.up(testbed.prepare_layout(Path(src)), db="postgresql", credentials=True)
    print(f"\ncontainer with PostgreSQL up in {info.get('UP_SECONDS')} s: {info['BASE_URL']}")
    box.info_values = info
    yield box
    problems = box.down()
    assert not problems, f"the container left: {problems}"


def psql(container, query):
    return sh(container, "runuser", "-u", "postgres", "--", "psql", "-tAc", query, "bitpoll").stdout.strip()


def test_service_stores_polls_in_the_local_postgresql(pg_container):
    props = show(pg_container, "bitpoll.service", "ActiveState", "Requires", "After")
    assert props["ActiveState"] == "active", journal(pg_container)
    assert "postgresql.target" in props["Requires"].split() and "postgresql.target" in props["After"].split()
    slug = f"pg-{int(time.time() * 1000)}"
    create_poll(pg_container.info_values["BASE_URL"], slug, "PostgreSQL poll")
    assert psql(pg_container, f"SELECT title FROM poll_poll WHERE url = '{slug}'") == "PostgreSQL poll"
    # The tables belong to the role of the service user: it connected by peer authentication.
    assert psql(pg_container, "SELECT tableowner FROM pg_tables WHERE tablename = 'poll_poll'") == "bitpoll"
    # The server listens on its unix socket only (the container shares the host's network):
    # the only TCP listeners are sshd and bitpoll.socket.
    info = pg_container.info_values
    addresses = sorted(address for address, _ in container_listeners(pg_container))
    assert addresses == sorted([f"127.0.0.1:{info['SSH_PORT']}", f"127.0.0.1:{info['HTTP_PORT']}"]), addresses
    assert sh(pg_container, "test", "-S", "/run/postgresql/.s.PGSQL.5432", check=False).returncode == 0


def test_backup_of_the_postgresql_database_verifies(pg_container):
    result = sh(pg_container, "systemctl", "start", "bitpoll-backup.service", check=False, timeout=300)
    assert result.returncode == 0, result.stderr + journal(pg_container, "bitpoll-backup.service")
    backup_dir = pg_container.info_values["BACKUP_DIR"]
    archive = sh(pg_container, "sh", "-c", f"ls -1t {backup_dir}/*.tar.gz").stdout.split()[0]
    verified = sh(
        pg_container, pg_container.info_values["PACKAGE"] + "/bin/bitpoll-ops", "verify", archive, check=False
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "postgresql database" in verified.stdout, verified.stdout
    print("\n" + verified.stdout.strip())


def test_secrets_come_from_credentials_only(pg_container):
    unit = sh(pg_container, "systemctl", "cat", "bitpoll.service").stdout
    for name in ("secret_key", "encryption_key"):
        assert f"LoadCredential={name}:{testbed.CREDENTIALS_DIR}/{name}" in unit, unit
    # The service user cannot read the files themselves: systemd hands it copies.
    read = sh(
        pg_container,
        "runuser",
        "-u",
        "bitpoll",
        "--",
        "cat",
        f"{testbed.CREDENTIALS_DIR}/secret_key",
        check=False,
    )
    assert read.returncode != 0 and "Permission denied" in read.stderr, read
    # prestart generated nothing, and the backup carries the credential's key (without it the
    # encrypted fields of a restored database would be unreadable).
    state = pg_container.info_values["SERVICE_STATE_DIR"]
    assert sh(pg_container, "ls", "-A", f"{state}/secrets").stdout.split() == []
    sh(pg_container, "systemctl", "start", "bitpoll-backup.service", timeout=300)
    archive = sh(
        pg_container, "sh", "-c", f"ls -1t {pg_container.info_values['BACKUP_DIR']}/*.tar.gz"
    ).stdout.split()[0]
    read_member = "import sys, tarfile; print(tarfile.open(sys.argv[1]).extractfile('secrets/encryption_key').read().decode().strip())"
    in_archive = sh(pg_container, pg_container.load()["python"], "-c", read_member, archive).stdout.strip()
    credential = sh(pg_container, "cat", f"{testbed.CREDENTIALS_DIR}/encryption_key").stdout.strip()
    assert in_archive == credential and len(credential) == 44
