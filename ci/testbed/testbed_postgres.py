"""The process testbed's private PostgreSQL: a cluster of its own under the temporary directory,
reached on a unix socket only, run as the postgres user when the testbed runs as root."""

import glob
import os
import pwd
import shutil
import tempfile

from testbed_build import TestbedError, read, run  # noqa: E402


def postgres_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise TestbedError(
            "PostgreSQL server not found in /usr/lib/postgresql/*/bin; "
            "install Debian's postgresql (ci/install.d/10-debian.sh)"
        )
    return os.path.dirname(found[-1])


PG_PREFIX = "bitpoll-testbed-pg-"


def remove_orphaned_clusters():
    """Delete stopped clusters whose instance directory is gone (deleted without `stop --remove`)."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), PG_PREFIX + "*")):
        try:
            owner = read(os.path.join(path, "instance")).decode()
        except OSError:
            continue
        if not os.path.exists(owner) and not os.path.exists(os.path.join(path, "data", "postmaster.pid")):
            shutil.rmtree(path, ignore_errors=True)


def as_postgres():
    entry = pwd.getpwnam("postgres")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []} if os.geteuid() == 0 else {}


class PostgresServer:
    """What an Instance needs to run its PostgreSQL: `pg_dir`, `pg_socket_dir` and
    `pg_password()` come from the Instance."""

    def start_postgres(self):
        bindir = postgres_bin()
        data = os.path.join(self.pg_dir, "data")
        ids = as_postgres()
        if not os.path.exists(os.path.join(data, "PG_VERSION")):
            os.makedirs(self.pg_socket_dir, exist_ok=True)
            os.makedirs(data, mode=0o700, exist_ok=True)
            if ids:
                for path in (self.pg_dir, self.pg_socket_dir, data):
                    os.chown(path, ids["user"], ids["group"])
            superuser_pw = os.path.join(self.pg_dir, "superuser-password")
            with open(os.open(superuser_pw, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
                handle.write(os.urandom(12).hex())
            if ids:
                os.chown(superuser_pw, ids["user"], ids["group"])
            run(
                [
                    f"{bindir}/initdb",
                    "-D",
                    data,
                    "--username=postgres",
                    f"--pwfile={superuser_pw}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                capture_output=True,
                text=True,
                **ids,
            )
            self._pg_ctl("start")
            password = self.pg_password().replace("'", "''")
            sql = f"CREATE ROLE bitpoll LOGIN PASSWORD '{password}';" "CREATE DATABASE bitpoll OWNER bitpoll;"
            # The SQL goes through stdin: it holds the role's password, which must appear in
            # no command line or error message, and psql runs stdin statements one by one
            # (CREATE DATABASE refuses to run inside the transaction that -c would make).
            run(
                [
                    f"{bindir}/psql",
                    "--no-psqlrc",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    self.pg_socket_dir,
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-f",
                    "-",
                ],
                env=dict(os.environ, PGPASSWORD=read(superuser_pw).decode()),
                input=sql,
                capture_output=True,
                text=True,
            )
        else:
            self._pg_ctl("start")

    def _pg_ctl(self, action):
        bindir = postgres_bin()
        data = os.path.join(self.pg_dir, "data")
        if action == "start":
            command = [
                f"{bindir}/pg_ctl",
                "-D",
                data,
                "-l",
                os.path.join(self.pg_dir, "postgres.log"),
                "-w",
                "-o",
                f"-k {self.pg_socket_dir} -c listen_addresses=''",
                "start",
            ]
        else:
            command = [f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"]
        run(command, capture_output=True, text=True, **as_postgres())

    def postgres_running(self):
        return os.path.exists(os.path.join(self.pg_dir, "data", "postmaster.pid"))
