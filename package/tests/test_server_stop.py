"""Stopping bitpoll-server (SIGTERM to gunicorn's master, as `systemctl stop` sends it).

gunicorn 26's gthread worker counts an idle keep-alive connection as one it must wait for during
a graceful shutdown, and its shutdown loop sleeps in select() for the whole remaining graceful
timeout instead of waking to expire it: one idle client (a browser, a connection pool) held every
stop, restart and upgrade for --graceful-timeout (30 s).  A request in progress must still get
its response.
"""

import http.client
import os
import signal
import socket
import textwrap
import threading
import time

import pytest

# The stand-in for a slow view: Bitpoll has none, so a middleware answers /slow after a pause.
# It records when the request has started, so the test signals the server mid-request.
SLOW_MIDDLEWARE = textwrap.dedent("""
    import os
    import time

    from django.http import HttpResponse


    class SlowMiddleware:
        def __init__(self, get_response):
            self.get_response = get_response

        def __call__(self, request):
            if request.path != "/slow":
                return self.get_response(request)
            open(os.environ["SLOW_STARTED"], "w").close()
            time.sleep(float(request.GET["seconds"]))
            return HttpResponse("slow request done")
""")

SLOW_SECONDS = 3.0


@pytest.fixture
def slow_instance(make_instance, tmp_path, monkeypatch):
    (tmp_path / "slowsite").mkdir()
    (tmp_path / "slowsite" / "slow_middleware.py").write_text(SLOW_MIDDLEWARE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "slowsite"))
    monkeypatch.setenv("SLOW_STARTED", str(tmp_path / "slow-started"))
    return make_instance(server=True, settings={"MIDDLEWARE_LOCAL": ["slow_middleware.SlowMiddleware"]})


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def exited(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return os.waitpid(pid, os.WNOHANG)[0] == pid


def test_stop_is_prompt_with_an_idle_keep_alive_client_and_finishes_requests(slow_instance, tmp_path):
    instance = slow_instance
    host, port = "127.0.0.1", instance.port

    # An idle client: one HTTP/1.1 request, then the connection is kept open without a second.
    idle = http.client.HTTPConnection(host, port, timeout=10)
    idle.request("GET", "/")
    response = idle.getresponse()
    assert response.status == 200
    response.read()

    # A request in progress when the stop begins.
    result = {}

    def slow_request():
        connection = http.client.HTTPConnection(host, port, timeout=60)
        try:
            connection.request("GET", f"/slow?seconds={SLOW_SECONDS}")
            answer = connection.getresponse()
            result["status"], result["body"] = answer.status, answer.read()
        except OSError as error:
            result["error"] = error
        finally:
            connection.close()

    client = threading.Thread(target=slow_request)
    client.start()
    wait_for(lambda: os.path.exists(tmp_path / "slow-started"), 30, "the slow request to start")

    # A connection that has not sent its request yet (a browser's speculative preconnect): gunicorn
    # waits up to 5 s for its first bytes, then closes it since it is stopping.
    preconnect = socket.create_connection((host, port), timeout=10)

    master = instance.server.pid
    started = time.monotonic()
    os.kill(master, signal.SIGTERM)
    try:
        wait_for(lambda: instance.server.poll() is not None, 45, "bitpoll-server to exit")
        took = time.monotonic() - started
        client.join(timeout=30)
        # The in-flight request was answered, not cut off by the stop.
        assert result.get("status") == 200 and result.get("body") == b"slow request done", result
        # The stop waited for that request and the preconnect's first bytes only, not for the idle
        # keep-alive connection (the graceful timeout is 30 s; before the fix it took all of it).
        assert took < 10, f"stop took {took:.1f} s with an idle keep-alive client"
        assert instance.server.returncode == 0, instance.log_tail()
    finally:
        idle.close()
        preconnect.close()
