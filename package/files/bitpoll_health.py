"""The health endpoint of a packaged Bitpoll: GET /-/health from this machine.

It answers 200 with a small JSON body when the app can serve, and 503 naming the failing check
when it cannot:

  {"status": "ok", "version": "0.11.0", "database": "ok", "migrations": "complete"}
  {"status": "failing", "failing": "database", "version": "0.11.0",
   "database": "the SQLite file /var/lib/bitpoll/bitpoll.sqlite3 is missing", "migrations": "unknown"}

The settings shim puts HealthMiddleware first in MIDDLEWARE, so a probe touches no session, no
CSRF token and no template, and writes nothing: SQLite is opened only when its file exists (a
connection would otherwise create an empty one), and the migrations are compared with one
SELECT of django_migrations against the migration graph read once from disk.

Only requests from a loopback address get the answer, whatever the Host header says, and the
answer holds nothing the header could change: a local probe needs no entry in ALLOWED_HOSTS,
and every other request, to this path as to any other, goes through Django's host validation
as before. (The module's nginx site refuses the path to everyone but the machine itself, since
it reaches Bitpoll from loopback too.)
"""

import ipaddress
import json
import os

from django.db import DatabaseError, connection
from django.http import HttpResponse

PATH = "/-/health"


def _from_loopback(request):
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        # A unix socket has no peer address; only this machine can connect to one.
        return request.META.get("REMOTE_ADDR", "") == ""


class _MigrationGraph:
    """Every migration on disk, read once: they only change with the package."""

    nodes = None

    @classmethod
    def all(cls):
        if cls.nodes is None:
            from django.db.migrations.loader import MigrationLoader

            cls.nodes = set(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)
        return cls.nodes


def _database():
    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        name = str(settings["NAME"])
        if not os.path.isfile(name):
            return f"the SQLite file {name} is missing"
        if not os.access(name, os.R_OK):
            return f"the SQLite file {name} is not readable"
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        return f"unreachable: {str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}"
    return "ok"


def _migrations():
    from django.db.migrations.recorder import MigrationRecorder

    try:
        applied = set(MigrationRecorder(connection).applied_migrations())
    except DatabaseError as error:
        return f"unreadable: {str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}"
    pending = sorted(f"{app}.{name}" for app, name in _MigrationGraph.all() - applied)
    if pending:
        return f"{len(pending)} pending ({', '.join(pending[:3])}{', ...' if len(pending) > 3 else ''})"
    return "complete"


def check():
    """The health report and its HTTP status."""
    report = {"status": "ok", "version": os.environ.get("BITPOLL_VERSION", "unknown")}
    report["database"] = _database()
    report["migrations"] = _migrations() if report["database"] == "ok" else "unknown"
    failing = [name for name, ok in (("database", "ok"), ("migrations", "complete")) if report[name] != ok]
    if failing:
        report["status"] = "failing"
        report["failing"] = failing[0]
    return report, 503 if failing else 200


class HealthMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path != PATH or request.method not in ("GET", "HEAD") or not _from_loopback(request):
            return self.get_response(request)
        report, status = check()
        response = HttpResponse(json.dumps(report) + "\n", status=status, content_type="application/json")
        response["Cache-Control"] = "no-store"
        return response
