"""Prometheus metrics of a packaged Bitpoll, the part that runs in gunicorn's workers.

Loaded only when metrics are on (BITPOLL_METRICS_LISTEN set: the settings shim then puts
MetricsMiddleware first in MIDDLEWARE, and bitpoll-server passes bitpoll_gunicorn_hooks.py to
gunicorn). With metrics off nothing imports this module or prometheus_client.

prometheus_client runs in its multiprocess mode: PROMETHEUS_MULTIPROC_DIR is set by the
service before the interpreter starts, so every counter and histogram below writes its values
into per-process files there (counter_<pid>.db, histogram_<pid>.db), and the master's metrics
listener (bitpoll_gunicorn_hooks.py) adds up the files of all workers, alive and dead. There are
no gauges here: the few gauges Bitpoll exports (bitpoll_info, bitpoll_polls, bitpoll_votes) are
computed by the master at scrape time (MasterCollector below), so no per-pid gauge series exist
and nothing needs a multiprocess_mode.

  bitpoll_http_requests_total{method,status,view}      counter
  bitpoll_http_request_duration_seconds{method,view}   histogram (until the view returns)
  bitpoll_db_queries_total{alias}                      counter, every query of the workers
  bitpoll_db_query_errors_total{alias}                 counter, queries that raised

`view` is the resolved URL name with its namespaces (Django's ResolverMatch.view_name: the
view's dotted path when the URL has no name), and for responses no URL pattern produced:
"<health>" (GET /-/health, bitpoll_health.py), "<static>" (WhiteNoise's files under
STATIC_URL) and "<unresolved>" (404 for an unknown path, 400 for a forged Host header, a
redirect of SecurityMiddleware). So its values are bounded by Bitpoll's URL configuration, not
by what clients send; `method` is one of the standard methods or "other".
"""

import os
import threading
import time

from django.conf import settings
from django.db.backends.signals import connection_created
from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"))
HEALTH_PATH = "/-/health"

REQUESTS = Counter(
    "bitpoll_http_requests_total",
    "HTTP responses of Bitpoll, by request method, status code and view.",
    ["method", "status", "view"],
)
DURATION = Histogram(
    "bitpoll_http_request_duration_seconds",
    "Time from a request entering Bitpoll's middleware to its response leaving it, by method and view.",
    ["method", "view"],
)
DB_QUERIES = Counter(
    "bitpoll_db_queries_total",
    "Database queries executed by Bitpoll's workers, by database alias.",
    ["alias"],
)
DB_ERRORS = Counter(
    "bitpoll_db_query_errors_total",
    "Database queries of Bitpoll's workers that raised an error, by database alias.",
    ["alias"],
)


def _static_prefix():
    url = getattr(settings, "STATIC_URL", None) or "/static/"
    return url if url.startswith("/") else "/" + url


def view_label(request):
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name
    path = request.path
    if path == HEALTH_PATH:
        return "<health>"
    if path.startswith(_static_prefix()):
        return "<static>"
    return "<unresolved>"


class MetricsMiddleware:
    """Counts and times every response, as the outermost middleware: it sees what the health
    endpoint, WhiteNoise and Django's host check answer as well as the views, and the 500 that
    Django makes of an exception (each inner middleware's errors become responses first)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        method = request.method if request.method in METHODS else "other"
        view = view_label(request)
        REQUESTS.labels(method, str(response.status_code), view).inc()
        DURATION.labels(method, view).observe(elapsed)
        return response


# Database queries: a wrapper on every connection a worker opens.

_untracked = threading.local()


class untracked:
    """Queries in this block (the master's scrape-time counts) are not counted as Bitpoll's."""

    def __enter__(self):
        _untracked.active = True

    def __exit__(self, *exc):
        _untracked.active = False


class QueryCounter:
    def __init__(self, alias):
        self.queries = DB_QUERIES.labels(alias)
        self.errors = DB_ERRORS.labels(alias)

    def __call__(self, execute, sql, params, many, context):
        self.queries.inc()
        try:
            return execute(sql, params, many, context)
        except Exception:
            self.errors.inc()
            raise


def install_query_counter(sender, connection, **kwargs):
    """connection_created: Django fires it for every new connection of a DatabaseWrapper, which
    is reused across requests (CONN_MAX_AGE), so the wrapper is added once."""
    if getattr(_untracked, "active", False):
        return
    if not any(isinstance(wrapper, QueryCounter) for wrapper in connection.execute_wrappers):
        connection.execute_wrappers.append(QueryCounter(connection.alias))


connection_created.connect(install_query_counter, dispatch_uid="bitpoll_metrics.install_query_counter")


# The master's part, at scrape time.


class MasterCollector:
    """bitpoll_info, the domain gauges and the scrape errors, computed in gunicorn's master.

    The counts are two COUNT queries on a connection that is closed after each scrape. When the
    database fails, bitpoll_polls and bitpoll_votes are left out of that scrape and
    bitpoll_scrape_errors_total grows: the rest of the scrape still answers."""

    def __init__(self):
        self.errors = 0
        self.last_error = None
        self.version = os.environ.get("BITPOLL_VERSION", "unknown")

    def counts(self):
        """(polls, votes), or None when the database failed (then .last_error says why)."""
        from django.apps import apps
        from django.db import connection, connections

        database = connection.settings_dict
        if database["ENGINE"].endswith("sqlite3") and not os.path.isfile(str(database["NAME"])):
            # Connecting would create an empty database in its place (bitpoll_health.py too
            # checks the file first).
            self.errors += 1
            self.last_error = f"the SQLite file {database['NAME']} is missing"
            return None
        try:
            with untracked():
                try:
                    polls = apps.get_model("poll", "Poll").objects.count()
                    votes = apps.get_model("poll", "Vote").objects.count()
                finally:
                    connections.close_all()
        except Exception as error:  # the database is down, unreadable, not migrated...
            self.errors += 1
            first = str(error).strip().splitlines()
            self.last_error = f"{type(error).__name__}: {first[0] if first else ''}".rstrip(": ")
            return None
        self.last_error = None
        return polls, votes

    def families(self, counts):
        info = GaugeMetricFamily(
            "bitpoll_info", "The running Bitpoll's version (always 1).", labels=["version"]
        )
        info.add_metric([self.version], 1)
        families = [info]
        if counts is not None:
            families.append(GaugeMetricFamily("bitpoll_polls", "Polls in the database.", value=counts[0]))
            families.append(GaugeMetricFamily("bitpoll_votes", "Votes in the database.", value=counts[1]))
        families.append(
            CounterMetricFamily(
                "bitpoll_scrape_errors",
                "Scrapes whose database counts (bitpoll_polls, bitpoll_votes) failed and were left out, "
                "since the server started.",
                value=self.errors,
            )
        )
        return families


class Precomputed:
    """A collector that yields families computed beforehand (outside the files' lock)."""

    def __init__(self, families):
        self._families = families

    def collect(self):
        return iter(self._families)
