"""The ops tool without Bitpoll: archives, verification, rotation, atomic writes, the prestart marker.

The app directory here holds the real settings shim and a stand-in manage.py that records its
arguments (and fails on request), so every path that does not need Django's migrations runs
against the real code.  The same paths run against a real Bitpoll in the other test files.
"""

import errno
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time

import pytest

import bitpoll_ops as ops
import bitpoll_ops_archive as ops_archive
import bitpoll_ops_base as ops_base
import bitpoll_ops_restore as ops_restore
from package_paths import FILES, OPS_MODULES

FAKE_MANAGE = """\
import json, os, sys
with open(os.environ["FAKE_MANAGE_LOG"], "a") as handle:
    handle.write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit(int(os.environ.get("FAKE_MANAGE_EXIT", "0")))
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """An app directory with the real shim, a settings file, a state directory and a database."""
    app = tmp_path / "app"
    (app / "bitpoll").mkdir(parents=True)
    shutil.copyfile(os.path.join(FILES, "settings_local.py"), app / "bitpoll" / "settings_local.py")
    (app / "manage.py").write_text(FAKE_MANAGE)
    state = tmp_path / "state"
    state.mkdir()
    settings = tmp_path / "etc" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"ALLOWED_HOSTS": ["x"], "BASE_URL": "http://x"}))
    for key in list(os.environ):
        if key.startswith("BITPOLL_") or key == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(key)
    monkeypatch.setenv("BITPOLL_STATE_DIR", str(state))
    monkeypatch.setenv("BITPOLL_SETTINGS_FILE", str(settings))
    monkeypatch.setenv("BITPOLL_STATIC_ROOT", str(tmp_path / "static"))
    monkeypatch.setenv("BITPOLL_APP_DIR", str(app))
    monkeypatch.setenv("BITPOLL_VERSION", "0.11.0")
    monkeypatch.setenv("FAKE_MANAGE_LOG", str(tmp_path / "manage.log"))
    ops_base.ensure_secrets(ops_base.Environment())
    database = sqlite3.connect(state / "bitpoll.sqlite3")
    with database:
        database.execute("CREATE TABLE poll (id INTEGER PRIMARY KEY, title TEXT)")
        database.executemany("INSERT INTO poll (title) VALUES (?)", [("lunch",), ("dinner",)])
    database.close()
    return tmp_path


def run_ops(*args):
    """Run the ops tool in-process; return (exit status, stdout, stderr) via capfd-free capture."""
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        status = ops.main(list(args))
    except SystemExit as exit_:
        status = exit_.code
    finally:
        sys.stdout, sys.stderr = old
    return status, out.getvalue(), err.getvalue()


def ok(*args):
    status, out, err = run_ops(*args)
    assert status == 0, (out, err)
    return out


def titles(site):
    database = sqlite3.connect(site / "state" / "bitpoll.sqlite3")
    try:
        return [row[0] for row in database.execute("SELECT title FROM poll ORDER BY id")]
    finally:
        database.close()


def snapshot(site):
    """Digests of everything restore may change."""
    state = site / "state"
    return {
        str(p.relative_to(state)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(state.rglob("*"))
        if p.is_file() and "backups" not in p.parts
    }


def make_backup(site, *extra):
    out = ok("backup", "--dir", str(site / "backups"), *extra)
    return re.search(r"wrote (\S+)", out).group(1)


def manage_calls(site):
    path = site / "manage.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# Backup and verify


def test_backup_layout_and_manifest(site):
    path = make_backup(site)
    assert re.fullmatch(r"bitpoll-backup-\d{8}T\d{6}\.\d{6}Z\.tar\.gz", os.path.basename(path))
    assert os.stat(path).st_mode & 0o777 == 0o600
    with tarfile.open(path) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        contents = {name: tar.extractfile(name).read() for name in names[1:]}
    assert names[0] == "manifest.json"
    assert set(names[1:]) == {"database/bitpoll.sqlite3", "secrets/secret_key", "secrets/encryption_key"}
    assert manifest["format"] == "bitpoll-backup" and manifest["format_version"] == 1
    assert manifest["bitpoll_version"] == "0.11.0"
    assert manifest["database"] == {"engine": "sqlite", "member": "database/bitpoll.sqlite3"}
    for name, data in contents.items():
        assert manifest["members"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert contents["secrets/secret_key"] == (site / "state" / "secrets" / "secret_key").read_bytes()
    # The database member is a complete SQLite copy.
    copy = site / "copy.sqlite3"
    copy.write_bytes(contents["database/bitpoll.sqlite3"])
    assert [r[0] for r in sqlite3.connect(copy).execute("SELECT title FROM poll ORDER BY id")] == [
        "lunch",
        "dinner",
    ]
    assert "is intact" in ok("verify", path)
    # Nothing is left behind in the state directory.
    assert not [p for p in os.listdir(site / "state") if p.startswith(".staging-")]


def test_backup_uses_secrets_from_credentials(site, monkeypatch):
    credentials = site / "credentials"
    credentials.mkdir()
    key = ops_base.generate_secret("encryption_key")
    (credentials / "encryption_key").write_bytes(key + b"\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    with tarfile.open(make_backup(site)) as tar:
        assert tar.extractfile("secrets/encryption_key").read() == key


def test_rotation_keeps_newest(site):
    directory = site / "backups"
    paths = [make_backup(site, "--keep", "3") for _ in range(5)]
    (directory / "notes.txt").write_text("not a backup")
    (directory / "bitpoll-pre-restore-20200101T000000.000000Z.tar.gz").write_text("a safety backup")
    make_backup(site, "--keep", "3")
    left = sorted(os.listdir(directory))
    backups = [name for name in left if name.startswith("bitpoll-backup-")]
    assert len(backups) == 3
    assert os.path.basename(paths[-1]) in backups and os.path.basename(paths[1]) not in backups
    assert "notes.txt" in left and "bitpoll-pre-restore-20200101T000000.000000Z.tar.gz" in left


def test_rotate_orders_by_time_in_name(tmp_path):
    for stamp in ("20261101T000000.000000Z", "20250101T000000.000000Z", "20261123T000000.000001Z"):
        (tmp_path / f"bitpoll-backup-{stamp}.tar.gz").write_text("")
    assert ops_archive.rotate(str(tmp_path), 1) == [
        "bitpoll-backup-20250101T000000.000000Z.tar.gz",
        "bitpoll-backup-20261101T000000.000000Z.tar.gz",
    ]


def test_keep_must_be_positive(site):
    status, _, err = run_ops("backup", "--dir", str(site / "backups"), "--keep", "0")
    assert status == 1 and "--keep must be at least 1" in err


@pytest.mark.parametrize("failure", ["fsync", "write"])
def test_failed_backup_leaves_earlier_ones_and_no_temp_file(site, monkeypatch, failure):
    earlier = make_backup(site)
    before = open(earlier, "rb").read()
    if failure == "fsync":
        real_fsync = os.fsync

        def fail(fd):
            # Only the archive's temporary file hits the full disk.
            if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_fsync(fd)

        monkeypatch.setattr(ops_base.os, "fsync", fail)
    else:
        original = tarfile.TarFile.addfile
        calls = []

        def addfile(self, tarinfo, fileobj=None, **kwargs):
            calls.append(tarinfo.name)
            if len(calls) == 2:  # the disk fills up after the manifest
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return original(self, tarinfo, fileobj, **kwargs)

        monkeypatch.setattr(tarfile.TarFile, "addfile", addfile)
    status, _, err = run_ops("backup", "--dir", str(site / "backups"), "--keep", "1")
    assert status == 1
    assert "cannot write backup" in err and "No space left on device" in err and "untouched" in err
    assert len(err.strip().splitlines()) == 1
    assert os.listdir(site / "backups") == [os.path.basename(earlier)]
    assert open(earlier, "rb").read() == before
    assert not [p for p in os.listdir(site / "state") if p.startswith(".staging-")]


def test_backup_of_missing_database(site):
    os.unlink(site / "state" / "bitpoll.sqlite3")
    status, _, err = run_ops("backup", "--dir", str(site / "backups"))
    assert status == 1 and "does not exist; nothing to back up" in err
    assert not os.listdir(site / "backups")


# Damaged archives


def rewrite(path, target, manifest_edit=None, members_edit=None, first=None):
    """Copy archive `path` to `target`, editing the manifest and members on the way."""
    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    manifest = json.loads(members.pop("manifest.json"))
    if manifest_edit:
        manifest_edit(manifest)
    if members_edit:
        members_edit(members)
    entries = [("manifest.json", json.dumps(manifest).encode()), *members.items()]
    if first:
        entries.sort(key=lambda entry: entry[0] != first)
    with tarfile.open(target, "w:gz") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(target)


def flip_byte(path, target, offset):
    data = bytearray(open(path, "rb").read())
    data[offset] ^= 0xFF
    target.write_bytes(bytes(data))
    return str(target)


def truncate(path, target, size):
    target.write_bytes(open(path, "rb").read()[:size])
    return str(target)


def tampered_database(members):
    members["database/bitpoll.sqlite3"] = members["database/bitpoll.sqlite3"][:-1] + b"X"


DAMAGES = {
    "byte flipped early": (lambda p, t: flip_byte(p, t, 100), "corrupt"),  # past the gzip header
    "byte flipped in the middle": (lambda p, t: flip_byte(p, t, os.path.getsize(p) // 2), "corrupt"),
    "byte flipped near the end": (lambda p, t: flip_byte(p, t, os.path.getsize(p) - 12), "corrupt"),
    "truncated to half": (lambda p, t: truncate(p, t, os.path.getsize(p) // 2), "truncated"),
    "truncated by a few bytes": (lambda p, t: truncate(p, t, os.path.getsize(p) - 4), "truncated"),
    "empty file": (lambda p, t: truncate(p, t, 0), "corrupt or truncated"),
    "member tampered": (
        lambda p, t: rewrite(p, t, members_edit=tampered_database),
        "does not match its sha256",
    ),
    "member missing": (
        lambda p, t: rewrite(p, t, members_edit=lambda m: m.pop("secrets/secret_key")),
        "members missing",
    ),
    "member not in manifest": (
        lambda p, t: rewrite(p, t, members_edit=lambda m: m.update({"extra": b"x"})),
        "not listed in the manifest",
    ),
    "foreign format": (
        lambda p, t: rewrite(p, t, manifest_edit=lambda m: m.update(format="other")),
        "not a Bitpoll backup",
    ),
    "newer format version": (
        lambda p, t: rewrite(p, t, manifest_edit=lambda m: m.update(format_version=2)),
        "format version 2",
    ),
    "path in manifest": (
        lambda p, t: rewrite(
            p, t, manifest_edit=lambda m: m["members"].update({"../../etc/x": {"sha256": "0", "size": 1}})
        ),
        "unexpected members",
    ),
    "manifest not first": (
        lambda p, t: rewrite(p, t, first="secrets/secret_key"),
        "first member is not manifest.json",
    ),
    "manifest not json": (
        lambda p, t: rewrite(p, t, members_edit=lambda m: None, manifest_edit=lambda m: m.clear()),
        "not a Bitpoll backup",
    ),
}


def foreign_tarball(_path, target):
    with tarfile.open(target, "w:gz") as tar:
        data = b"hello"
        info = tarfile.TarInfo("README")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return str(target)


DAMAGES["foreign tarball"] = (foreign_tarball, "not a Bitpoll backup")
DAMAGES["not gzip"] = (lambda p, t: (t.write_text("just text"), str(t))[1], "corrupt or truncated")


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_archive_is_refused_and_nothing_changes(site, damage):
    good = make_backup(site)
    make, fragment = DAMAGES[damage]
    bad = make(good, site / "damaged.tar.gz")
    status, _, err = run_ops("verify", bad)
    assert status == 1 and fragment in err, err
    assert len(err.strip().splitlines()) == 1
    # Restore verifies first: the live data, the secrets and the backup directory stay as they were.
    sqlite3.connect(site / "state" / "bitpoll.sqlite3").execute(
        "INSERT INTO poll (title) VALUES ('new')"
    ).connection.commit()
    before, backups = snapshot(site), sorted(os.listdir(site / "backups"))
    status, _, err = run_ops("restore", bad, "--yes", "--backup-dir", str(site / "backups"))
    assert status == 1 and fragment in err, err
    assert snapshot(site) == before
    assert sorted(os.listdir(site / "backups")) == backups
    assert titles(site) == ["lunch", "dinner", "new"]


def test_missing_archive(site):
    status, _, err = run_ops("verify", str(site / "nope.tar.gz"))
    assert status == 1 and "cannot open" in err and "No such file" in err


# Restore


def test_restore_round_trip_with_safety_backup(site):
    archive = make_backup(site)
    secrets_before = {n: (site / "state" / "secrets" / n).read_bytes() for n in ops_base.SECRET_NAMES}
    database = sqlite3.connect(site / "state" / "bitpoll.sqlite3")
    with database:
        database.execute("INSERT INTO poll (title) VALUES ('added after the backup')")
    database.close()
    for name in ops_base.SECRET_NAMES:
        (site / "state" / "secrets" / name).unlink()
    out = ok("restore", archive, "--yes", "--backup-dir", str(site / "safety"))
    assert titles(site) == ["lunch", "dinner"]
    assert {n: (site / "state" / "secrets" / n).read_bytes() for n in ops_base.SECRET_NAMES} == secrets_before
    for name in ops_base.SECRET_NAMES:
        assert os.stat(site / "state" / "secrets" / name).st_mode & 0o777 == 0o600
    # The safety backup holds the state as it was just before the restore.
    safety = [p for p in os.listdir(site / "safety") if p.startswith("bitpoll-pre-restore-")]
    assert len(safety) == 1 and safety[0] in out
    with tarfile.open(site / "safety" / safety[0]) as tar:
        (site / "before.sqlite3").write_bytes(tar.extractfile("database/bitpoll.sqlite3").read())
    assert [r[0] for r in sqlite3.connect(site / "before.sqlite3").execute("SELECT title FROM poll")][
        -1
    ] == "added after the backup"
    # Same version: no migration, and the marker says so for the next start.
    assert manage_calls(site) == []
    assert json.loads((site / "state" / ops_base.MARKER).read_text())["package"]["version"] == "0.11.0"


def test_restore_without_yes_off_a_terminal(site):
    archive = make_backup(site)
    status, _, err = run_ops("restore", archive)
    assert status == 1 and "--yes" in err


def test_restore_older_archive_migrates(site, monkeypatch):
    monkeypatch.setenv("BITPOLL_VERSION", "0.10.0")
    archive = make_backup(site)
    monkeypatch.setenv("BITPOLL_VERSION", "0.11.0")
    out = ok("restore", archive, "--yes")
    assert "older than 0.11.0" in out
    assert manage_calls(site) == [["migrate", "--noinput"]]


def test_restore_refuses_newer_archive(site, monkeypatch):
    monkeypatch.setenv("BITPOLL_VERSION", "0.12.0")
    archive = make_backup(site)
    monkeypatch.setenv("BITPOLL_VERSION", "0.11.0")
    before = snapshot(site)
    status, _, err = run_ops("restore", archive, "--yes")
    assert status == 1 and "from Bitpoll 0.12.0" in err and "0.12.0 or newer" in err
    assert snapshot(site) == before


def test_restore_refuses_while_server_runs(site):
    archive = make_backup(site)
    # A process whose command line says gunicorn, as bitpoll-server's does.
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "gunicorn"])
    try:
        time.sleep(0.1)
        (site / "state" / "server.pid").write_text(f"{server.pid}\n")
        status, _, err = run_ops("restore", archive, "--yes")
        assert status == 1 and f"bitpoll-server is running (pid {server.pid}" in err
        # Stopping only the service would let its socket start it again on the next request.
        assert "systemctl stop bitpoll.socket bitpoll.service" in err
    finally:
        server.kill()
        server.wait()
    # A stale pid file does not block.
    ok("restore", archive, "--yes")


def fake_gunicorn():
    """A process whose command line says gunicorn, as bitpoll-server's does, once it has started."""
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "gunicorn"])
    deadline = time.monotonic() + 10
    while b"gunicorn" not in pathlib.Path(f"/proc/{server.pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "the stand-in server did not start"
        time.sleep(0.01)
    return server


def test_running_server_when_proc_hides_the_process(site, tmp_path):
    """Under ProtectProc=invisible (or hidepid) /proc has no entry for another user's process."""
    env = ops_base.Environment()
    pid_file = site / "state" / "server.pid"
    hidden_proc = tmp_path / "proc"
    hidden_proc.mkdir()
    server = fake_gunicorn()
    try:
        pid_file.write_text(f"{server.pid}\n")
        # The process exists, so the cautious answer is "running", although /proc does not say so.
        assert ops_restore.running_server(env, proc=str(hidden_proc)) == (server.pid, False)
        # Where /proc shows it, its command line confirms it.
        assert ops_restore.running_server(env) == (server.pid, True)
    finally:
        server.kill()
        server.wait()
    # A pid with no process is a stale file, hidden or not.
    assert ops_restore.running_server(env, proc=str(hidden_proc)) is None
    assert ops_restore.running_server(env) is None
    # A visible process that is not gunicorn (a recycled pid) does not count.
    pid_file.write_text(f"{os.getpid()}\n")
    assert ops_restore.running_server(env) is None
    for garbage in ("", "abc", "0", "-1"):
        pid_file.write_text(garbage)
        assert ops_restore.running_server(env) is None


def test_restore_refuses_while_a_hidden_server_runs(request):
    """The real thing: /proc mounted with hidepid=invisible, the check run as another user."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        pytest.skip("needs root, unshare and setpriv to mount a /proc that hides other users' processes")
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("needs a system python3 that an unprivileged user can run")
    # Everything the unprivileged checker reads must be reachable for it, which pytest's own
    # temporary directories (0700) are not.
    shared = pathlib.Path(tempfile.mkdtemp(prefix="bitpoll-hidepid-"))
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    (shared / "state").mkdir()
    for module in OPS_MODULES:
        shutil.copyfile(os.path.join(FILES, module), shared / module)
    # (restore sets a umask of 077 in this process, so the modes are set explicitly.)
    for path in (shared, shared / "state"):
        os.chmod(path, 0o755)
    for module in OPS_MODULES:
        os.chmod(shared / module, 0o644)
    check = (
        "import sys, types; sys.path.insert(0, sys.argv[1]); import bitpoll_ops_restore as ops_restore; "
        "print(ops_restore.running_server(types.SimpleNamespace(state_dir=sys.argv[2])))"
    )
    server = fake_gunicorn()
    try:
        (shared / "state" / "server.pid").write_text(f"{server.pid}\n")
        os.chmod(shared / "state" / "server.pid", 0o644)
        script = (
            "mount -t proc -o hidepid=invisible proc /proc && "
            'exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"'
        )
        result = subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
                python,
                "-c",
                check,
                str(shared),
                str(shared / "state"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if "mount" in result.stderr and result.returncode != 0:
            pytest.skip(f"cannot mount a private /proc here: {result.stderr.strip()}")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"({server.pid}, False)"
    finally:
        server.kill()
        server.wait()


def test_restore_refuses_other_engine(site, monkeypatch, tmp_path):
    archive = make_backup(site)
    settings = json.loads((site / "etc" / "settings.json").read_text())
    settings["DATABASES"] = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "bitpoll"}}
    (site / "etc" / "settings.json").write_text(json.dumps(settings))
    status, _, err = run_ops("restore", archive, "--yes")
    assert status == 1 and "holds a sqlite database but this instance uses postgresql" in err


# Prestart


def test_prestart_secrets_and_marker(site, monkeypatch):
    secrets = site / "state" / "secrets"
    shutil.rmtree(secrets)
    out = ok("prestart")
    assert os.stat(secrets).st_mode & 0o777 == 0o700
    for name in ops_base.SECRET_NAMES:
        assert os.stat(secrets / name).st_mode & 0o777 == 0o600
        assert f"created secret {name}" in out
    assert len(ops_base.base64.urlsafe_b64decode((secrets / "encryption_key").read_bytes())) == 32
    assert manage_calls(site) == [["migrate", "--noinput"]]
    values = {name: (secrets / name).read_bytes() for name in ops_base.SECRET_NAMES}
    # Second start: nothing created, nothing migrated.
    out = ok("prestart")
    assert "nothing to migrate" in out and "created" not in out
    assert manage_calls(site) == [["migrate", "--noinput"]]
    assert {name: (secrets / name).read_bytes() for name in ops_base.SECRET_NAMES} == values
    # A new package (another version or app directory) migrates once more.
    monkeypatch.setenv("BITPOLL_VERSION", "0.11.1")
    assert "the package changed (0.11.0" in ok("prestart")
    assert len(manage_calls(site)) == 2


def test_prestart_failed_migration_is_retried(site, monkeypatch):
    (site / "state" / "bitpoll.sqlite3").unlink()
    monkeypatch.setenv("FAKE_MANAGE_EXIT", "1")
    status, _, err = run_ops("prestart")
    assert status == 1 and "manage.py migrate --noinput failed with exit status 1" in err
    assert not (site / "state" / ops_base.MARKER).exists()
    monkeypatch.setenv("FAKE_MANAGE_EXIT", "0")
    ok("prestart")
    assert (site / "state" / ops_base.MARKER).exists()
    assert len(manage_calls(site)) == 2


def test_prestart_passes_configuration_errors_through(site, monkeypatch):
    (site / "etc" / "settings.json").write_text("[]")
    status, out, err = run_ops("prestart")
    # The shim's one line, and nothing added by the ops tool.
    assert status == 78
    assert err.splitlines() == [
        f"bitpoll: configuration error: settings file {site}/etc/settings.json "
        f"must contain a JSON object of settings, not a list"
    ]


def test_prestart_leaves_credentials_alone(site, monkeypatch):
    credentials = site / "credentials"
    credentials.mkdir()
    for name in ops_base.SECRET_NAMES:
        (credentials / name).write_bytes(ops_base.generate_secret(name))
        (site / "state" / "secrets" / name).unlink()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    out = ok("prestart")
    assert "created secret" not in out
    assert os.listdir(site / "state" / "secrets") == []


def test_prestart_tightens_modes(site):
    os.chmod(site / "state" / "secrets", 0o755)
    os.chmod(site / "state" / "secrets" / "secret_key", 0o644)
    out = ok("prestart")
    assert "tightened" in out
    assert os.stat(site / "state" / "secrets").st_mode & 0o777 == 0o700
    assert os.stat(site / "state" / "secrets" / "secret_key").st_mode & 0o777 == 0o600


def test_prestart_needs_state_dir(site, monkeypatch):
    monkeypatch.setenv("BITPOLL_STATE_DIR", str(site / "missing"))
    status, _, err = run_ops("prestart")
    assert status == 1 and "state directory" in err and "does not exist" in err


def test_state_dir_with_unusual_characters(site, monkeypatch):
    # The SQLite source is opened through a file: URI, where "?", "#" and "%" mean something.
    unusual = site / "st ate #1?%20"
    os.rename(site / "state", unusual)
    monkeypatch.setenv("BITPOLL_STATE_DIR", str(unusual))
    archive = make_backup(site)
    ok("verify", archive)
    with tarfile.open(archive) as tar:
        (site / "copy.sqlite3").write_bytes(tar.extractfile("database/bitpoll.sqlite3").read())
    assert [r[0] for r in sqlite3.connect(site / "copy.sqlite3").execute("SELECT title FROM poll")] == [
        "lunch",
        "dinner",
    ]


def test_restore_failing_midway_names_the_way_back(site, monkeypatch):
    archive = make_backup(site)
    sqlite3.connect(site / "state" / "bitpoll.sqlite3").execute(
        "INSERT INTO poll (title) VALUES ('new')"
    ).connection.commit()

    def full_disk(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(site / "state" / "secrets"))

    # The database is restored, then writing the secrets fails.
    original = ops_restore.restore_secrets
    monkeypatch.setattr(ops_restore, "restore_secrets", full_disk)
    status, out, err = run_ops("restore", archive, "--yes", "--backup-dir", str(site / "safety"))
    assert status == 1
    safety = re.search(r"safety backup of the current state: (\S+)", out).group(1)
    assert "restore failed midway: No space left on device" in err
    assert f"to go back: bitpoll-ops restore {safety} --yes" in err
    monkeypatch.setattr(ops_restore, "restore_secrets", original)
    assert titles(site) == ["lunch", "dinner"]  # the half-done restore
    ok("restore", safety, "--yes", "--backup-dir", str(site / "safety"))
    assert titles(site) == ["lunch", "dinner", "new"]
