"""The package's runtime pieces against a real Bitpoll (BITPOLL_SRC): prestart, server, secrets."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from bitpoll_data import applied_migrations, seed, snapshot, tagged_line


def fetch(url, headers=None, data=None):
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# prestart


def test_prestart_twice_applies_nothing_the_second_time(make_instance):
    instance = make_instance()  # its start ran prestart once
    marker = os.path.join(instance.state_dir, ".bitpoll-migrated")
    with open(marker) as handle:
        recorded = json.load(handle)
    assert recorded["package"]["version"] == instance.build.version
    before = applied_migrations(instance)
    assert len(before) > 50
    database = os.path.join(instance.state_dir, "bitpoll.sqlite3")
    mtime = os.stat(database).st_mtime_ns
    result = instance.ops("prestart")
    assert "nothing to migrate" in result.stdout
    assert "Applying" not in result.stdout and "running migrations" not in result.stdout
    assert os.stat(database).st_mtime_ns == mtime
    assert applied_migrations(instance) == before
    with open(marker) as handle:
        assert json.load(handle) == recorded


def test_killed_migration_is_completed_on_next_start(make_instance):
    instance = make_instance(start=False)
    instance.layout()
    database = os.path.join(instance.state_dir, "bitpoll.sqlite3")
    process = subprocess.Popen(
        [instance.build.tool("bitpoll-ops"), "prestart"],
        env=instance.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    partial = None
    deadline = time.monotonic() + 120
    try:
        while partial is None and time.monotonic() < deadline:
            assert process.poll() is None, "prestart finished before the test could interrupt it"
            if os.path.exists(database):
                connection = sqlite3.connect(database, timeout=30, isolation_level=None)
                try:
                    count = connection.execute("SELECT count(*) FROM django_migrations").fetchone()[0]
                    if count >= 5:
                        # Hold the write lock so the migration cannot go on, then kill it mid-run.
                        connection.execute("BEGIN EXCLUSIVE")
                        partial = connection.execute("SELECT count(*) FROM django_migrations").fetchone()[0]
                        os.killpg(process.pid, signal.SIGKILL)
                        process.wait()
                        connection.execute("ROLLBACK")
                except sqlite3.OperationalError:
                    pass  # the table does not exist yet
                finally:
                    connection.close()
            time.sleep(0.01)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert partial is not None, "the migration never got going"
    assert not os.path.exists(os.path.join(instance.state_dir, ".bitpoll-migrated"))
    result = instance.ops("prestart")
    assert "running migrations: no successful migration recorded" in result.stdout
    assert "Applying" in result.stdout
    # No system-check warnings in the journal at every start.
    assert "System check identified" not in result.stdout + result.stderr
    assert os.path.exists(os.path.join(instance.state_dir, ".bitpoll-migrated"))
    plan = instance.manage("showmigrations", "--plan").stdout
    assert "[ ]" not in plan and "[X]" in plan
    assert len(applied_migrations(instance)) > partial
    assert "nothing to migrate" in instance.ops("prestart").stdout


# The server


def test_server_serves_pages_and_static_files(make_instance):
    instance = make_instance()
    # A stale pid file naming a live process that is not gunicorn (this one) must not block.
    with open(os.path.join(instance.state_dir, "server.pid"), "w") as handle:
        handle.write(f"{os.getpid()}\n")
    instance.start_server()
    with open(os.path.join(instance.state_dir, "server.pid")) as handle:
        assert int(handle.read()) == instance.server.pid
    status, headers, body = fetch(instance.base_url + "/")
    assert status == 200 and b"csrfmiddlewaretoken" in body
    css = [part.split('"')[0] for part in body.decode().split('href="')[1:] if ".css" in part.split('"')[0]]
    assert css, "no stylesheet on the front page"
    status, headers, _ = fetch(instance.base_url + css[0])
    assert status == 200
    # A hashed name from staticfiles.json: cached for ten years, immutable (WhiteNoise).
    assert "immutable" in headers["Cache-Control"] and "max-age=315360000" in headers["Cache-Control"]
    # Served before the locale and session middleware see it.
    assert "Accept-Language" not in headers.get("Vary", "") and "Set-Cookie" not in headers
    status, headers, _ = fetch(instance.base_url + "/static/staticfiles.json")
    assert status == 200 and "immutable" not in headers["Cache-Control"]
    # DEBUG is off: an unknown host gets 400, an unknown page a plain 404.
    assert fetch(instance.base_url + "/", headers={"Host": "evil.example"})[0] == 400
    status, _, body = fetch(instance.base_url + "/no/such/page/")
    assert status == 404 and b"Traceback" not in body
    settings = tagged_line(
        instance.shell(
            "import json; from django.conf import settings as s; "
            "print('SETTINGS', json.dumps([s.DEBUG, s.MIDDLEWARE, s.STATIC_ROOT, s.DATABASES['default']['NAME']]))"
        ),
        "SETTINGS",
    )
    debug, middleware, static_root, database = settings
    assert debug is False
    assert middleware[:2] == [
        "django.middleware.security.SecurityMiddleware",
        "whitenoise.middleware.WhiteNoiseMiddleware",
    ]
    assert middleware.count("whitenoise.middleware.WhiteNoiseMiddleware") == 1
    assert static_root == instance.build.static_root
    assert database == os.path.join(instance.state_dir, "bitpoll.sqlite3")
    # German translations were compiled at build time.
    status, _, body = fetch(instance.base_url + "/", headers={"Accept-Language": "de"})
    assert status == 200 and b"Umfrage erstellen" in body


def test_server_takes_systemd_socket(make_instance):
    """LISTEN_FDS/LISTEN_PID as systemd passes them: the wrapper's exec keeps the pid gunicorn checks."""
    import socket

    instance = make_instance()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", instance.port))
    listener.listen(16)
    launcher = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3); os.environ['LISTEN_FDS'] = '1'; "
        "os.environ['LISTEN_PID'] = str(os.getpid()); os.execv(sys.argv[2], sys.argv[2:])"
    )
    log_path = os.path.join(instance.log_dir, "socket-activated.log")
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", launcher, str(listener.fileno()), instance.build.tool("bitpoll-server")],
            env=instance.env(),
            pass_fds=(listener.fileno(),),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    listener.close()
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status != 200:
            assert server.poll() is None, open(log_path).read()
            try:
                status = fetch(instance.base_url + "/")[0]
            except OSError:
                time.sleep(0.05)
        assert status == 200
        output = open(log_path).read()
        assert f"Listening at: http://127.0.0.1:{instance.port} ({server.pid})" in output
        assert "8000" not in output
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


# Secrets


def secret_values(instance):
    values = {}
    for directory in filter(None, (instance.credentials_dir, os.path.join(instance.state_dir, "secrets"))):
        for name in ("secret_key", "encryption_key", "db_password"):
            path = os.path.join(directory, name)
            if os.path.exists(path) and name not in values:
                with open(path, "rb") as handle:
                    values[name] = handle.read().strip()
    assert {"secret_key", "encryption_key"} <= set(values)
    return values


def files_containing(root, values, skip=()):
    found = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(directory, d) not in skip]
        for name in files:
            path = os.path.join(directory, name)
            if path in skip or os.path.islink(path) or not os.path.isfile(path):
                continue
            try:
                if os.path.getsize(path) > 50 << 20:
                    continue
                with open(path, "rb") as handle:
                    data = handle.read()
            except OSError:
                continue
            found += [(path, name) for name, value in values.items() if value in data]
    return found


@pytest.mark.parametrize("db,credentials", [("sqlite", False), ("postgresql", True)])
def test_secrets_stay_out_of_environment_processes_logs_and_other_files(make_instance, db, credentials):
    started = time.time()
    instance = make_instance(db=db, credentials=credentials, server=True)
    values = secret_values(instance)
    # Exercise the paths that could log or spill: pages, errors, a POST refused for CSRF, a backup.
    fetch(instance.base_url + "/")
    fetch(instance.base_url + "/no/such/page/")
    fetch(instance.base_url + "/", headers={"Host": "evil.example"})
    fetch(instance.base_url + "/", data=b"title=x")
    seed(instance, "leak")
    outputs = [
        instance.ops("backup").stdout,
        instance.ops("prestart").stdout,
        instance.manage("check").stderr,
    ]
    # No process's environment or command line holds a secret (the server's included).
    leaks = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for part in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as handle:
                    data = handle.read()
            except OSError:
                continue
            leaks += [(pid, part, name) for name, value in values.items() if value in data]
    assert instance.server.poll() is None
    assert not leaks
    for output in outputs:
        assert not [name for name, value in values.items() if value.decode() in output]
    # No file outside the state directory holds one: logs, settings, the app, the static files.
    # The credentials directory is systemd's (the source), and .pg-password the testbed's own
    # copy of what an administrator would have provided.
    skip = {
        instance.state_dir,
        os.path.join(instance.dir, "credentials"),
        os.path.join(instance.dir, ".pg-password"),
    }
    assert not files_containing(instance.dir, values, skip)
    assert not files_containing(instance.build.root, values)
    recent_tmp = [
        p
        for p in (os.path.join("/tmp", n) for n in os.listdir("/tmp"))
        if os.path.isfile(p) and os.stat(p).st_mtime >= started
    ]
    assert not [p for p in recent_tmp if any(v in open(p, "rb").read() for v in values.values())]
    # Staging directories are gone; secrets inside the state directory are private.
    assert not [n for n in os.listdir(instance.state_dir) if n.startswith(".staging-")]
    if not credentials:
        for name in ("secret_key", "encryption_key"):
            assert os.stat(os.path.join(instance.state_dir, "secrets", name)).st_mode & 0o777 == 0o600
    assert snapshot(instance)["polls"] == [["lunch-leak", "Lunch leak", "universal"]]
