"""A process testbed instance: settings, secrets and state as the NixOS module lays them out,
an optional private PostgreSQL (testbed_postgres.py), and the server (bitpoll_testbed.py is the
entry point)."""

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import shell_env  # noqa: E402
from testbed_build import Build, TestbedError, read  # noqa: E402
from testbed_postgres import PG_PREFIX, PostgresServer, postgres_bin, remove_orphaned_clusters  # noqa: E402

# Instance


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Instance(PostgresServer):
    """One deployment: settings, credentials, state, optional PostgreSQL, server."""

    def __init__(
        self, build, directory, db="sqlite", settings=None, port=None, credentials=True, pg_dir=None
    ):
        self.build = build
        self.dir = os.path.abspath(directory)
        self.db = db
        self.extra_settings = settings or {}
        self.port = port
        self.use_credentials = credentials
        self.state_dir = os.path.join(self.dir, "state")
        self.settings_file = os.path.join(self.dir, "etc", "settings.json")
        self.credentials_dir = os.path.join(self.dir, "credentials") if credentials else None
        # PostgreSQL runs as `postgres`, which must reach its directory, and a unix socket path
        # must stay short: so the cluster lives in its own directory under /tmp, not below `dir`.
        self.pg_dir = pg_dir
        if db == "postgresql" and pg_dir is None:
            remove_orphaned_clusters()
            self.pg_dir = tempfile.mkdtemp(prefix=PG_PREFIX)
            os.chmod(self.pg_dir, 0o755)
            with open(os.path.join(self.pg_dir, "instance"), "w") as handle:
                handle.write(self.dir)
        self.log_dir = os.path.join(self.dir, "log")
        self.server = None
        self.server_log = None

    # Layout

    @property
    def pg_socket_dir(self):
        return os.path.join(self.pg_dir, "run") if self.pg_dir else None

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def settings(self):
        settings = {
            "ALLOWED_HOSTS": ["127.0.0.1", "localhost"],
            "BASE_URL": self.base_url,
            "LANGUAGE_CODE": "en-us",
        }
        if self.db == "postgresql":
            settings["DATABASES"] = {
                "default": {
                    "ENGINE": "django.db.backends.postgresql",
                    "NAME": "bitpoll",
                    "USER": "bitpoll",
                    "HOST": self.pg_socket_dir,
                }
            }
        settings.update(self.extra_settings)
        return settings

    def env(self, **extra):
        """The service's environment, as the NixOS module sets it (plus PATH for pg_dump)."""
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("CREDENTIALS_DIRECTORY", "BITPOLL_SETTINGS_FILE", "BITPOLL_STATE_DIR")
        }
        env.update(BITPOLL_SETTINGS_FILE=self.settings_file, BITPOLL_STATE_DIR=self.state_dir)
        if self.credentials_dir:
            env["CREDENTIALS_DIRECTORY"] = self.credentials_dir
        if self.db == "postgresql":
            env["PATH"] = postgres_bin() + os.pathsep + env.get("PATH", "")
        env.update(extra)
        return env

    def write_settings(self, settings=None):
        os.makedirs(os.path.dirname(self.settings_file), exist_ok=True)
        with open(self.settings_file, "w") as handle:
            json.dump(self.settings() if settings is None else settings, handle, indent=2)

    def write_credentials(self):
        """Secrets as systemd would provide them: one file per credential, 0400, in a 0500 dir."""
        os.makedirs(self.credentials_dir, exist_ok=True)
        os.chmod(self.credentials_dir, 0o700)
        values = {
            "secret_key": base64.urlsafe_b64encode(os.urandom(40)).decode(),
            "encryption_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        }
        if self.db == "postgresql":
            values["db_password"] = self.pg_password()
        for name, value in values.items():
            path = os.path.join(self.credentials_dir, name)
            if not os.path.exists(path):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o400), "w") as handle:
                    handle.write(value + "\n")
        os.chmod(self.credentials_dir, 0o500)

    def pg_password(self):
        path = os.path.join(self.dir, ".pg-password")
        if not os.path.exists(path):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
                handle.write(os.urandom(12).hex())
        return read(path).decode()

    def layout(self):
        os.makedirs(self.dir, exist_ok=True)
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        self.write_settings()
        if self.credentials_dir:
            self.write_credentials()
        elif self.db == "postgresql":
            secrets = os.path.join(self.state_dir, "secrets")
            os.makedirs(secrets, mode=0o700, exist_ok=True)
            path = os.path.join(secrets, "db_password")
            if not os.path.exists(path):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
                    handle.write(self.pg_password())

    # Tools

    def tool(self, name, *args, check=True, capture=True, timeout=300, **env):
        """Run one of the package's wrappers with the instance's environment."""
        result = subprocess.run(
            [self.build.tool(name), *args],
            env=self.env(**env),
            cwd=self.dir,
            capture_output=capture,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise TestbedError(
                f"{name} {' '.join(args)} failed with status {result.returncode}\n"
                f"{result.stdout or ''}{result.stderr or ''}"
            )
        return result

    def manage(self, *args, **kwargs):
        return self.tool("bitpoll-manage", *args, **kwargs)

    def ops(self, *args, **kwargs):
        return self.tool("bitpoll-ops", *args, **kwargs)

    def shell(self, code, **kwargs):
        """Run Python code in Django's shell and return its stdout."""
        return self.manage("shell", "-c", code, **kwargs).stdout

    # Server

    def start_server(self, timeout=60):
        self.server_log = os.path.join(self.log_dir, "server.log")
        log_handle = open(self.server_log, "ab")
        self.server = subprocess.Popen(
            [self.build.tool("bitpoll-server"), "--bind", f"127.0.0.1:{self.port}"],
            env=self.env(),
            cwd=self.dir,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_handle.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise TestbedError(
                    f"bitpoll-server exited with status {self.server.returncode}:\n" + self.log_tail()
                )
            try:
                with urllib.request.urlopen(self.base_url + "/", timeout=5) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise TestbedError(f"bitpoll-server gave no 200 within {timeout} s:\n" + self.log_tail())

    def log_tail(self, lines=30):
        with contextlib.suppress(OSError):
            return "\n".join(read(self.server_log).decode(errors="replace").splitlines()[-lines:])
        return ""

    def stop_server(self):
        pid = self.server.pid if self.server else self._saved().get("server_pid")
        if pid:
            stop_process_group(pid)
        if self.server:
            self.server.wait()
        self.server = None

    # Whole instance

    def start(self, server=True):
        self.layout()
        if self.db == "postgresql":
            self.start_postgres()
        self.tool("bitpoll-ops", "prestart")
        if server:
            self.start_server()
        self.save()
        return self

    def save(self):
        data = {
            "build": self.build.root,
            "python": self.build.python,
            "version": self.build.version,
            "db": self.db,
            "port": self.port,
            "credentials": bool(self.credentials_dir),
            "pg_dir": self.pg_dir,
            "server_pid": self.server.pid if self.server else None,
        }
        with open(os.path.join(self.dir, "testbed.json"), "w") as handle:
            json.dump(data, handle, indent=2)

    def _saved(self):
        with contextlib.suppress(OSError, ValueError):
            return json.loads(read(os.path.join(self.dir, "testbed.json")))
        return {}

    @classmethod
    def load(cls, directory):
        path = os.path.join(directory, "testbed.json")
        try:
            data = json.loads(read(path))
        except OSError:
            raise TestbedError(f"{path} not found; is {directory} a testbed directory?")
        build = Build(data["build"], data["python"], data["version"])
        return cls(
            build,
            directory,
            db=data["db"],
            port=data["port"],
            credentials=data["credentials"],
            pg_dir=data.get("pg_dir"),
        )

    def stop(self, remove=False):
        """Stop the server and PostgreSQL; with `remove`, delete the instance's directories."""
        self.stop_server()
        if self.db == "postgresql" and self.postgres_running():
            self._pg_ctl("stop")
        if remove:
            for path in (self.dir, self.pg_dir):
                if path:
                    shutil.rmtree(path, ignore_errors=True)
        else:
            self.save()

    def describe(self):
        lines = {
            "BASE_URL": self.base_url,
            "STATE_DIR": self.state_dir,
            "SETTINGS_FILE": self.settings_file,
            "TESTBED_DIR": self.dir,
            "BIN_DIR": self.build.bin_dir,
            "DB": self.db,
            "SERVER_PID": str(self.server.pid) if self.server else "",
            "SERVER_LOG": self.server_log or "",
        }
        if self.credentials_dir:
            lines["CREDENTIALS_DIRECTORY"] = self.credentials_dir
        if self.db == "postgresql":
            lines["PG_SOCKET_DIR"] = self.pg_socket_dir
        return lines

    def exports(self):
        """The instance as `export` lines: `bitpoll-harness run SCENARIO` with the local target
        works once a shell has loaded them (the layout's commands first on PATH, and, for
        PostgreSQL, pg_dump and psql)."""
        variables = {
            "BITPOLL_HARNESS_TARGET": "local",
            "BITPOLL_HARNESS_BASE_URL": self.base_url,
            "BITPOLL_SETTINGS_FILE": self.settings_file,
            "BITPOLL_STATE_DIR": self.state_dir,
        }
        if self.credentials_dir:
            variables["CREDENTIALS_DIRECTORY"] = self.credentials_dir
        path = [self.build.bin_dir] + ([postgres_bin()] if self.db == "postgresql" else [])
        return shell_env.exports(variables, path)


def stop_process_group(pid, timeout=30):
    """SIGTERM the server's process group (gunicorn shuts down gracefully), SIGKILL after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
