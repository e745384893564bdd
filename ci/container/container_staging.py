"""What a container holds before it boots: its base system (hostname, SSH), Bitpoll laid out as
the NixOS module lays it out (settings, units of every generation, the switch command, user,
directories), secret files for LoadCredential= and a PostgreSQL arranged as NixOS's. Each takes
the Container (container_testbed.py) whose state directory it writes."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

from container_common import (
    BACKUP_DIR,
    CONTAINER_PATH,
    CREDENTIALS_DIR,
    RENDER_UNITS,
    SERVICE_STATE_DIR,
    STORE,
    SWITCH_SCRIPT,
    UNIT_SUFFIXES,
    TestbedError,
    run,
    store_hash,
)
from container_layout import Layout


@dataclasses.dataclass
class Setup:
    """What `up` installs: the active package and others, the database, extra arguments for
    ci/render-units, extra settings, and whether the secrets come as credentials."""

    layout: Layout | None
    others: list[Layout]
    db: str
    render_args: list[str]
    settings: dict
    credentials: bool
    # Ports of further generations of the active package that listen elsewhere
    # (VERSION-portN), for `bitpoll-testbed-switch` to move the listener.
    switch_ports: list[int]
    # Prometheus metrics on (services.bitpoll.metrics.enable) at state["metrics_port"].
    metrics: bool = False
    # A further generation VERSION-metrics of the active package with metrics on at
    # state["switch_metrics_port"], for `bitpoll-testbed-switch` to turn them on (and back off).
    switch_metrics: bool = False


def stage_system(container, root: Path, state: dict) -> None:
    """Configure the container's base system in its writable layer, before it boots."""
    (root / "etc/hostname").write_text(state["machine"] + "\n")
    ssh = container.dir / "ssh"
    ssh.mkdir(mode=0o700)
    run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            f"root@{state['machine']}",
            "-f",
            str(ssh / "id_ed25519"),
        ]
    )
    run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            state["machine"],
            "-f",
            str(ssh / "ssh_host_ed25519_key"),
        ]
    )
    host_pub = (ssh / "ssh_host_ed25519_key.pub").read_text().split()
    port = state["ssh_port"]
    (ssh / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    (ssh / "ssh_config").write_text(
        f"Host {state['machine']} 127.0.0.1\n"
        f"  HostName 127.0.0.1\n  Port {port}\n  User root\n"
        f"  IdentityFile {ssh / 'id_ed25519'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {ssh / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
        f"  LogLevel ERROR\n"
    )
    etc_ssh = root / "etc/ssh"
    for suffix in ("", ".pub"):
        target = etc_ssh / f"ssh_host_ed25519_key{suffix}"
        shutil.copyfile(ssh / f"ssh_host_ed25519_key{suffix}", target)
        target.chmod(0o600 if not suffix else 0o644)
    # Only on 127.0.0.1 (the container shares the host's network), keys only.
    (etc_ssh / "sshd_config.d/bitpoll-testbed.conf").write_text(
        "# Written by ci/container/container_testbed.py: the container shares the host's network, so "
        "sshd\n"
        "# listens on 127.0.0.1 only, on the port chosen when the container was started.\n"
        f"ListenAddress 127.0.0.1:{port}\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UseDNS no\n"
    )
    dot_ssh = root / "root/.ssh"
    dot_ssh.mkdir(mode=0o700, exist_ok=True)
    shutil.copyfile(ssh / "id_ed25519.pub", dot_ssh / "authorized_keys")
    (dot_ssh / "authorized_keys").chmod(0o600)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "ssh.service").symlink_to("/lib/systemd/system/ssh.service")


def stage_bitpoll(container, root: Path, setup: Setup, state: dict) -> None:
    """Bitpoll's settings, units, user and directories, as the NixOS module lays them out."""
    layout, others, db = setup.layout, setup.others, setup.db
    render_args = list(setup.render_args)
    port = state["http_port"]
    base_url = f"http://127.0.0.1:{port}"
    # The settings file is in the store, as the module renders it.
    settings: dict = {
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost"],
        "BASE_URL": base_url,
    }
    if db == "postgresql":
        # What module/database.nix renders for database.createLocally, and the units it
        # requires (NixOS's postgresql.target: the server runs and ensure* ran).
        settings["DATABASES"] = {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "bitpoll",
                "USER": "bitpoll",
                "HOST": "/run/postgresql",
                "PORT": "5432",
            }
        }
        render_args = ["--require", "postgresql.target", *render_args]
        stage_postgresql(root)
    settings.update(setup.settings)
    if setup.credentials:
        render_args += stage_credentials(root)
    if setup.metrics:
        # services.bitpoll.metrics.enable, its socket on a free port of the shared network.
        render_args += ["--metrics-address", "127.0.0.1", "--metrics-port", str(state["metrics_port"])]
    settings_path = (
        f"{STORE}/{store_hash('settings', json.dumps(settings, sort_keys=True))}-bitpoll-settings.json"
    )
    (container.dir / "store" / settings_path[len(STORE) + 1 :]).write_text(
        json.dumps(settings, indent=2) + "\n"
    )
    # Every package's units, rendered with its store path, kept in the container for
    # bitpoll-testbed-switch; the active package's are installed.
    packages = root / "etc/bitpoll-testbed/packages"
    packages.mkdir(parents=True)
    generations = [(candidate.version, candidate, port, []) for candidate in [layout, *others]]
    generations += [(f"{layout.version}-port{other}", layout, other, []) for other in setup.switch_ports]
    if setup.switch_metrics:
        metrics = ["--metrics-address", "127.0.0.1", "--metrics-port", str(state["switch_metrics_port"])]
        generations.append((f"{layout.version}-metrics", layout, port, metrics))
    for generation, candidate, listen_port, extra in generations:
        units = container.dir / "units" / generation
        run(
            [
                sys.executable,
                str(RENDER_UNITS),
                str(units),
                "--package",
                candidate.c_package,
                "--settings-file",
                settings_path,
                "--state-dir",
                SERVICE_STATE_DIR,
                "--address",
                "127.0.0.1",
                "--port",
                str(listen_port),
                "--backup-dir",
                BACKUP_DIR,
                "--env",
                f"PATH={CONTAINER_PATH}",
                "--systemd-run",
                "/usr/bin/systemd-run",
                *render_args,
                *extra,
            ]
        )
        kept = packages / generation
        kept.mkdir()
        for unit in sorted(units.iterdir()):
            if unit.is_file() and unit.suffix in UNIT_SUFFIXES:
                shutil.copyfile(unit, kept / unit.name)
        # The commands the module puts on PATH (environment.systemPackages): bitpoll-manage
        # and bitpoll-ops, each running the package's tool in a unit with the service's
        # sandbox.
        shutil.copytree(units / "bin", kept / "bin")
    system = root / "etc/systemd/system"
    for unit in sorted((packages / layout.version).iterdir()):
        if unit.suffix in UNIT_SUFFIXES:
            shutil.copyfile(unit, system / unit.name)
    (root / "etc/bitpoll-testbed/current").write_text(layout.version + "\n")
    tmpfiles = container.dir / "units" / layout.version / "tmpfiles.d/bitpoll.conf"
    if tmpfiles.is_file():
        shutil.copyfile(tmpfiles, root / "etc/tmpfiles.d/bitpoll.conf")
    for command in sorted((packages / layout.version / "bin").iterdir()):
        shutil.copyfile(command, root / "usr/local/bin" / command.name)
        (root / "usr/local/bin" / command.name).chmod(0o755)
    switch = root / "usr/local/sbin/bitpoll-testbed-switch"
    shutil.copyfile(SWITCH_SCRIPT, switch)
    switch.chmod(0o755)
    # The service's system user, created by systemd-sysusers at boot like NixOS's
    # users.users.bitpoll (isSystemUser, own group, home in the state directory).
    (root / "etc/sysusers.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/sysusers.d/bitpoll.conf").write_text(f'u bitpoll - "Bitpoll" {SERVICE_STATE_DIR}\n')
    # The host's Python links libpython by an rpath under /root, which ProtectHome= hides
    # from the service; the dynamic loader falls back to ld.so.cache, which learns the
    # interpreter's store path after boot (ldconfig needs the bind mounts in place).
    bases = sorted({candidate.c_base for candidate in [layout, *others]})
    (root / "etc/ld.so.conf.d/bitpoll-python.conf").write_text("".join(f"{base}/lib\n" for base in bases))
    state.update(
        base_url=base_url,
        package=layout.c_package,
        python=layout.c_python,
        settings_file=settings_path,
        service_state_dir=SERVICE_STATE_DIR,
        backup_dir=BACKUP_DIR,
        units=str(container.dir / "units" / layout.version),
        version=layout.version,
        packages={candidate.version: candidate.c_package for candidate in [layout, *others]},
        db=db,
        credentials=setup.credentials,
    )
    container.save(state)


def stage_credentials(root: Path) -> list[str]:
    """Secret files outside the store, readable by root only, passed to the units with
    LoadCredential= as the module does for secretKeyFile and encryptionKeyFile; returns the
    ci/render-units arguments that name them."""
    directory = root / CREDENTIALS_DIR.lstrip("/")
    directory.mkdir(parents=True, mode=0o700)
    values = {
        "secret_key": base64.urlsafe_b64encode(os.urandom(48)).decode(),
        # A Fernet key: 32 random bytes, URL-safe base64.
        "encryption_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }
    arguments = []
    for name, value in values.items():
        path = directory / name
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(value + "\n")
        arguments += ["--credential", f"{name}={CREDENTIALS_DIR}/{name}"]
    return arguments


def stage_postgresql(root: Path) -> None:
    """Debian's PostgreSQL arranged like NixOS's services.postgresql with ensureDatabases and
    ensureUsers (ensureDBOwnership): a `postgresql.target` reached once the server runs and
    the role and database of the service user exist. Peer authentication on the unix socket
    (Debian's default pg_hba.conf) lets `bitpoll` in as the role `bitpoll`, without password."""
    clusters = sorted(root.glob("etc/postgresql/*/main"))
    if not clusters:
        raise TestbedError(
            "the root file system has no PostgreSQL cluster in /etc/postgresql/*/main; rebuild it "
            "(bitpoll-container build-rootfs)"
        )
    server = f"postgresql@{clusters[-1].parent.name}-main.service"
    system = root / "etc/systemd/system"
    script = root / "usr/local/lib/bitpoll-testbed/postgresql-setup"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(
        "#!/bin/sh\n"
        "# services.postgresql's ensureUsers (with ensureDBOwnership) and ensureDatabases for\n"
        "# Bitpoll, idempotent. Written by ci/container/container_testbed.py.\n"
        "set -eu\n"
        'exists() { [ "$(psql -tAc "$1")" = 1 ]; }\n'
        "exists \"SELECT 1 FROM pg_roles WHERE rolname = 'bitpoll'\" || psql -qc 'CREATE ROLE bitpoll "
        "LOGIN'\n"
        "exists \"SELECT 1 FROM pg_database WHERE datname = 'bitpoll'\" || psql -qc 'CREATE DATABASE "
        "bitpoll OWNER bitpoll'\n"
        "psql -qc 'ALTER DATABASE bitpoll OWNER TO bitpoll'\n"
    )
    script.chmod(0o755)
    (system / "postgresql-setup.service").write_text(
        "[Unit]\n"
        "Description=Create the PostgreSQL role and database of Bitpoll\n"
        f"Requires={server}\nAfter={server}\n\n"
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nUser=postgres\n"
        f"ExecStart={script.relative_to(root).as_posix().join(['/', ''])}\n"
    )
    (system / "postgresql.target").write_text(
        "# Written by ci/container/container_testbed.py: as on NixOS, reached once the server\n"
        "# runs and its ensure* steps ran.\n"
        "[Unit]\nDescription=PostgreSQL server, with Bitpoll's role and database\n"
        f"Requires={server} postgresql-setup.service\nAfter={server} postgresql-setup.service\n"
    )
