"""gunicorn's configuration when metrics are on: the metrics listener in the master.

bitpoll-server passes this file to gunicorn (--config) only when BITPOLL_METRICS_LISTEN is set,
after it has checked and emptied PROMETHEUS_MULTIPROC_DIR. Every setting of the command line
still wins over this file; it defines hooks only (gunicorn ignores the underscored names).

  when_ready   starts the metrics listener, a thread of the master: on the socket systemd passed
               (BITPOLL_METRICS_FD, set by bitpoll-server) or else bound to BITPOLL_METRICS_LISTEN.
               GET /metrics answers prometheus_client's MultiProcessCollector over the workers'
               files plus the master's own gauges; every other path is 404.
  child_exit   a worker has exited (recycled by --max-requests, killed, crashed): after
               multiprocess.mark_process_dead(pid) as prometheus_client documents, its counter
               and histogram files are added into one archive file per type, so that its counts
               stay in every later scrape while the directory does not grow with each recycled
               worker.
  post_fork    a new worker closes its copy of the metrics socket.

The master forks workers while the listener thread may be inside SQLite or libpq: a fork waits
(at most FORK_WAIT seconds) for a scrape's database step to finish, so that no worker is born
with a database library lock held by a thread it does not have.
"""

import os
import socket
import socketserver
import sys
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, HTTPServer

from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder
from prometheus_client.mmap_dict import MmapedDict

_FORK_WAIT = 10.0
# Scrapes read the files while child_exit rewrites them: one at a time, so no scrape sees a
# dead worker's counts twice (in the archive and in its own file) or not at all.
_files_lock = threading.Lock()
# Held during a scrape's database step; a fork waits for it (see above).
_db_lock = threading.Lock()
_state = {"server": None, "collector": None, "fork_held": False}


def _directory():
    return os.environ["PROMETHEUS_MULTIPROC_DIR"]


# The listener


def _parse_listen(value):
    """'HOST:PORT' or '[IPV6]:PORT' to (host, port); ValueError with the reason otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"BITPOLL_METRICS_LISTEN={value!r} is not HOST:PORT (IPv6 as [::1]:9150)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _listening_socket():
    fd = os.environ.get("BITPOLL_METRICS_FD")
    if fd:
        sock = socket.socket(fileno=int(fd))
        sock.set_inheritable(False)
        return sock
    host, port = _parse_listen(os.environ.get("BITPOLL_METRICS_LISTEN", ""))
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(16)
    except OSError:
        sock.close()
        raise
    return sock


class _Handler(BaseHTTPRequestHandler):
    server_version = "bitpoll-metrics"
    # A client that stalls cannot hold the (single) listener thread for long.
    timeout = 10

    def do_GET(self):
        if self.path.split("?", 1)[0] != "/metrics":
            self._answer(404, b"not found; the metrics are at /metrics\n", "text/plain; charset=utf-8")
            return
        try:
            body, content_type = scrape(self.headers.get("Accept"))
        except Exception as error:  # an unreadable file, say: say so, and keep serving
            _log(f"metrics: the scrape failed: {type(error).__name__}: {error}")
            self._answer(500, b"the scrape failed; see the journal\n", "text/plain; charset=utf-8")
            return
        self._answer(200, body, content_type)

    def _answer(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass  # a scrape every few seconds is not worth a journal line


def scrape(accept=None):
    """The exposition of one scrape: the workers' files and the master's own families."""
    import bitpoll_metrics

    collector = _state["collector"]
    with _db_lock:
        counts = collector.counts()
    if counts is None:
        if not _state.get("db_failing"):
            _log(
                f"metrics: bitpoll_polls and bitpoll_votes left out, the database failed: {collector.last_error}"
            )
        _state["db_failing"] = True
    elif _state.get("db_failing"):
        _log("metrics: the database answers again")
        _state["db_failing"] = False
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=_directory())
    registry.register(bitpoll_metrics.Precomputed(collector.families(counts)))
    encoder, content_type = choose_encoder(accept or "")
    with _files_lock:
        return encoder(registry), content_type


def _log(message):
    sys.stderr.write(f"bitpoll: {message}\n")
    sys.stderr.flush()


# Dead workers' files


def compact(pid, directory=None):
    """Add the counter and histogram files of the exited process `pid` into <type>_archive.db.

    The files hold, per key (metric, sample name and labels), the value of that process: a
    counter's count, a histogram's per-bucket count and sum. Adding them key by key across
    processes is what MultiProcessCollector does at every scrape, so the archive plus the live
    files read exactly as all the files did."""
    directory = directory or _directory()
    with _files_lock:
        for kind in ("counter", "histogram", "summary"):
            dead = os.path.join(directory, f"{kind}_{pid}.db")
            if not os.path.exists(dead):
                continue
            archive = os.path.join(directory, f"{kind}_archive.db")
            totals = defaultdict(float)
            for path in (archive, dead):
                if os.path.exists(path):
                    for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(path):
                        totals[key] += value
            fresh = archive + ".new"  # not *.db: never read by a scrape
            if os.path.exists(fresh):
                os.unlink(fresh)
            merged = MmapedDict(fresh)
            try:
                for key, value in totals.items():
                    merged.write_value(key, value, 0.0)
            finally:
                merged.close()
            os.replace(fresh, archive)
            os.unlink(dead)


# Fork guard


def _before_fork():
    _state["fork_held"] = _db_lock.acquire(timeout=_FORK_WAIT)


def _after_fork():
    if _state["fork_held"]:
        _state["fork_held"] = False
        _db_lock.release()


# gunicorn's hooks


def when_ready(server):
    import django
    from django.apps import apps

    if not apps.ready:  # without --preload the master has not loaded Bitpoll
        django.setup()
    import bitpoll_metrics

    _state["collector"] = bitpoll_metrics.MasterCollector()
    where = f"socket fd {os.environ['BITPOLL_METRICS_FD']}" if os.environ.get("BITPOLL_METRICS_FD") else None
    try:
        sock = _listening_socket()
    except (OSError, ValueError) as error:
        target = where or os.environ.get("BITPOLL_METRICS_LISTEN")
        server.log.error("bitpoll: metrics listener on %s: %s", target, error)
        server.halt(reason=f"the metrics listener could not be opened on {target}", exit_status=1)
    # HTTPServer's constructor would create a socket of its own even when told not to bind,
    # and the service's sandbox allows AF_UNIX only (RestrictAddressFamilies=): serve the socket
    # systemd passed (or the one bound above) without creating another.
    httpd = HTTPServer.__new__(HTTPServer)
    socketserver.BaseServer.__init__(httpd, sock.getsockname()[:2], _Handler)
    httpd.socket = sock
    httpd.server_name, httpd.server_port = "localhost", sock.getsockname()[1]
    _state["server"] = httpd
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)
    threading.Thread(target=httpd.serve_forever, name="bitpoll-metrics", daemon=True).start()
    address = sock.getsockname()
    shown = f"[{address[0]}]:{address[1]}" if sock.family == socket.AF_INET6 else f"{address[0]}:{address[1]}"
    server.log.info(
        "bitpoll: metrics at http://%s/metrics (%s), multiprocess directory %s",
        shown,
        where or "bound by the master",
        _directory(),
    )


def post_fork(server, worker):
    httpd = _state["server"]
    if httpd is not None:
        httpd.socket.close()


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
    try:
        compact(worker.pid)
    except OSError as error:  # the files stay as they are and still count
        server.log.warning(
            "bitpoll: metrics: could not archive the files of worker %s: %s", worker.pid, error
        )
