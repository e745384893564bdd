"""Prometheus metrics (bitpoll_metrics.py, bitpoll_gunicorn_hooks.py, bitpoll-server) against a
real Bitpoll under gunicorn on the process testbed: off by default (no listener, no route, no
prometheus_client); on, the requests to / are counted exactly over both workers, a worker killed
with SIGKILL or recycled by --max-requests takes none of its counts with it, a restart starts
from an empty directory, the listener is where it was told and the public app has no /metrics;
the master's gauges survive a missing database. The labels and query counters are checked with
Django's test client in the same settings (test_the_labels_and_the_query_counters)."""

import json
import os
import shutil
import signal

import pytest

from bitpoll_data import seed, tagged_line
from metrics_support import (
    INDEX,
    children,
    get_many,
    index_counts_by_file,
    index_requests,
    listening,
    scrape,
    start,
    value,
    wait_for,
    workers,
)
from test_runtime import fetch

LOADED = "import sys, bitpoll.wsgi; print('LOADED', 'prometheus_client' in sys.modules)"


@pytest.fixture
def metrics_dir(tmp_path):
    path = tmp_path / "metrics"
    path.mkdir()
    return path


def test_metrics_are_off_by_default(make_instance):
    instance = make_instance(server=True)
    master = instance.server.pid
    assert fetch(instance.base_url + "/metrics")[0] == 404
    # One listener, Bitpoll's, in the master and in each worker; no hooks configuration.
    assert listening(master) == {("127.0.0.1", instance.port)}
    for worker in workers(master):
        assert listening(worker) == {("127.0.0.1", instance.port)}
    with open(f"/proc/{master}/cmdline", "rb") as handle:
        assert b"bitpoll_gunicorn_hooks" not in handle.read()
    # Loading the WSGI application as gunicorn's --preload does imports no prometheus_client,
    # and does with metrics on (so that the check can fail).
    assert "LOADED False" in instance.shell(LOADED)
    assert "LOADED True" in instance.shell(LOADED, BITPOLL_METRICS_LISTEN="127.0.0.1:9150")


def test_requests_are_counted_exactly_over_both_workers_and_a_killed_one(make_instance, metrics_dir):
    instance = make_instance(start=True)
    master, port = start(instance, metrics_dir)
    serving_workers = workers(master)
    before = index_requests(port)
    # Rounds of concurrent requests until both workers have served some of them.
    sent = 0
    for _ in range(10):
        statuses = get_many(instance.base_url + "/", 30)
        assert statuses == [200] * 30
        sent += 30
        by_file = index_counts_by_file(instance.build, metrics_dir)
        if sum(1 for name, count in by_file.items() if count > 0) >= 2:
            break
    serving = {int(name[len("counter_") : -3]) for name, count in by_file.items() if count > 0}
    assert serving == set(serving_workers), f"not both workers served: {by_file}"
    assert index_requests(port) - before == sent
    assert sum(by_file.values()) - before == sent

    # A worker killed outright: gunicorn starts another, child_exit archives the dead one's file.
    counted = index_requests(port)
    victim = serving_workers[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(children(master)) == 2 and victim not in children(master), 60, "a new worker")
    wait_for(
        lambda: not (metrics_dir / f"counter_{victim}.db").exists(), 30, "the dead worker's file archived"
    )
    assert (metrics_dir / "counter_archive.db").exists()
    assert index_requests(port) == counted, "the counter went back when a worker died"
    statuses = get_many(instance.base_url + "/", 20)
    assert statuses == [200] * 20
    assert index_requests(port) == counted + 20
    # The histogram agrees with the counter.
    samples = scrape(port)
    count = value(samples, "bitpoll_http_request_duration_seconds_count", method="GET", view="index")
    assert count == counted + 20
    # The master's scrape-time queries are not the workers' queries.
    queries = value(samples, "bitpoll_db_queries_total", alias="default")
    assert queries > 0 and value(scrape(port), "bitpoll_db_queries_total", alias="default") == queries


def test_recycled_workers_lose_no_count_and_leave_few_files(make_instance, metrics_dir):
    instance = make_instance(start=True)
    master, port = start(instance, metrics_dir, "--max-requests", "5", "--max-requests-jitter", "0")
    first = set(workers(master))
    before = index_requests(port)
    statuses = get_many(instance.base_url + "/", 60, concurrency=4)
    assert statuses == [200] * 60
    # At least one worker served its five and was replaced.
    wait_for(lambda: first - set(children(master)), 30, "a worker to be recycled")
    assert index_requests(port) - before == 60
    # Every worker that exited was added into the archive: only the live workers' files and one
    # archive per type remain (and the master's, should it have counted anything).

    def only_live_files():
        live = set(children(master)) | {master}
        owners = [name[:-3].split("_")[1] for name in os.listdir(metrics_dir) if name.endswith(".db")]
        return all(owner == "archive" or int(owner) in live for owner in owners)

    wait_for(only_live_files, 30, f"only live workers' files and the archives in {metrics_dir}")
    assert index_requests(port) - before == 60


def test_a_restart_starts_from_an_empty_directory(make_instance, metrics_dir):
    instance = make_instance(start=True)
    _, port = start(instance, metrics_dir)
    assert get_many(instance.base_url + "/", 10) == [200] * 10
    assert index_requests(port) == 10
    instance.stop_server()
    files = sorted(os.listdir(metrics_dir))
    assert any(name.startswith("counter_") for name in files), files
    # What a crashed run leaves: a counter file of a process long gone, a stray directory.
    shutil.copyfile(
        metrics_dir / next(n for n in files if n.startswith("counter_")), metrics_dir / "counter_1.db"
    )
    (metrics_dir / "leftover").mkdir()
    (metrics_dir / ".hidden").write_text("")
    _, port = start(instance, metrics_dir)
    assert index_requests(port) == 0
    assert not {"counter_1.db", "leftover", ".hidden"} & set(os.listdir(metrics_dir))
    assert get_many(instance.base_url + "/", 3) == [200] * 3
    assert index_requests(port) == 3


def test_the_listener_is_where_it_was_told_and_the_public_app_has_no_metrics(make_instance, metrics_dir):
    instance = make_instance(start=True)
    master, port = start(instance, metrics_dir, host="::1")
    # Only on [::1]:port; the workers do not hold the metrics socket.
    assert listening(master) == {("127.0.0.1", instance.port), ("::1", port)}
    for worker in workers(master):
        assert listening(worker) == {("127.0.0.1", instance.port)}
    samples = scrape(port, host="[::1]")
    assert value(samples, "bitpoll_info", version=instance.build.version) == 1
    # The metrics listener answers /metrics only; the public app has no such route.
    assert fetch(f"http://[::1]:{port}/")[0] == 404
    assert fetch(f"http://[::1]:{port}/metrics/x")[0] == 404
    assert fetch(instance.base_url + "/metrics")[0] == 404
    samples = scrape(port, host="[::1]")
    assert value(samples, "bitpoll_http_requests_total", method="GET", status="404", view="<unresolved>") == 1


def test_domain_gauges_and_a_missing_database(make_instance, metrics_dir):
    instance = make_instance(start=True)
    seed(instance, "metrics")
    _, port = start(instance, metrics_dir)
    samples = scrape(port)
    assert value(samples, "bitpoll_polls") == 1 and value(samples, "bitpoll_votes") == 2
    assert value(samples, "bitpoll_scrape_errors_total") == 0
    database = os.path.join(instance.state_dir, "bitpoll.sqlite3")
    os.rename(database, database + ".away")
    try:
        samples = scrape(port)
        assert ("bitpoll_polls", frozenset()) not in samples and ("bitpoll_votes", frozenset()) not in samples
        assert value(samples, "bitpoll_scrape_errors_total") == 1
        assert value(samples, "bitpoll_info", version=instance.build.version) == 1
        assert not os.path.exists(database), "the scrape created an empty database"
    finally:
        os.rename(database + ".away", database)
    samples = scrape(port)
    assert value(samples, "bitpoll_polls") == 1 and value(samples, "bitpoll_scrape_errors_total") == 1
    assert "the database failed: the SQLite file" in instance.log_tail(200)


LABELS = """
import json
from django.db import connection
from django.test import Client
import bitpoll_metrics as m

client = Client(HTTP_HOST="127.0.0.1")
client.get("/")
client.get("/", HTTP_HOST="evil.example")
client.get("/no/such/page")
client.get("/-/health")
client.get("{static}")
client.generic("BREW", "/")


def count(metric):
    return sum(s.value for family in metric.collect() for s in family.samples
               if s.name.endswith("_total") and s.labels == {"alias": "default"})


before = count(m.DB_QUERIES), count(m.DB_ERRORS)
with connection.cursor() as cursor:
    for _ in range(3):
        cursor.execute("SELECT 1")
    try:
        cursor.execute("SELECT * FROM no_such_table")
    except Exception:
        pass
print("QUERIES " + json.dumps([count(m.DB_QUERIES) - before[0], count(m.DB_ERRORS) - before[1]]))
samples = [[s.name, s.labels, s.value] for family in m.REQUESTS.collect() for s in family.samples
           if s.name.endswith("_total")]
print("SAMPLES " + json.dumps(samples))
"""


def test_the_labels_and_the_query_counters(make_instance):
    """Django's test client through the middleware of the settings with metrics on (in one
    process: prometheus_client's own mode without PROMETHEUS_MULTIPROC_DIR)."""
    instance = make_instance()
    with open(os.path.join(instance.build.static_root, "staticfiles.json")) as handle:
        static = "/static/" + next(iter(json.load(handle)["paths"].values()))
    output = instance.shell(LABELS.replace("{static}", static), BITPOLL_METRICS_LISTEN="127.0.0.1:9150")
    samples = {
        (name, tuple(sorted(labels.items()))): count for name, labels, count in tagged_line(output, "SAMPLES")
    }

    def requests(method, status, view):
        return samples.get(
            ("bitpoll_http_requests_total", (("method", method), ("status", status), ("view", view)))
        )

    assert requests(**INDEX) == 1
    assert requests("GET", "404", "<unresolved>") == 1
    assert requests("GET", "400", "<unresolved>") == 1  # Django's host check
    assert requests("GET", "200", "<health>") == 1
    assert requests("GET", "200", "<static>") == 1
    assert requests("other", "200", "index") == 1  # Bitpoll's index answers any method
    assert len(samples) == 6, samples
    # Three queries and a failing one: four queries, one error.
    assert tagged_line(output, "QUERIES") == [4, 1]
