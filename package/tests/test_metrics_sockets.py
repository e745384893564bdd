"""bitpoll-server's part of the metrics: the socket systemd passes as `metrics` goes to the
master's listener and not to gunicorn's HTTP listeners, in any position among them; and the
settings it refuses (exit 78, one line) before gunicorn starts.

A launcher stands in for systemd: it opens the listening sockets, puts them on fds 3, 4, ... in
the order asked, sets LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID to its own pid, and execs
bitpoll-server, which therefore runs with that pid, as under systemd."""

import os
import subprocess
import textwrap

import pytest

from metrics_support import launch, listening, metrics_env, scrape, value, workers
from test_runtime import fetch
from testbed_instance import free_port

LAUNCHER = textwrap.dedent("""
    import os, socket, sys
    names, ports, command = sys.argv[1].split(":"), sys.argv[2].split(":"), sys.argv[3:]
    sockets = []
    for port in ports:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", int(port)))
        sock.listen(16)
        sockets.append(sock)
    # Out of the way first, then onto 3, 4, ... (the sockets may have got those very numbers).
    high = [os.dup(sock.fileno()) + 100 for sock in sockets]
    for sock, fd in zip(sockets, high):
        os.dup2(sock.fileno(), fd)
        sock.close()
    for index, fd in enumerate(high):
        os.dup2(fd, 3 + index)  # inheritable, as systemd passes them
        os.close(fd)
    os.environ.update(LISTEN_FDS=str(len(names)), LISTEN_FDNAMES=":".join(names), LISTEN_PID=str(os.getpid()))
    os.execv(command[0], command)
    """)


def environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as handle:
        entries = handle.read().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in entries if b"=" in entry)


@pytest.mark.parametrize(
    "names",
    [["http", "metrics"], ["metrics", "http"], ["http", "metrics", "http2"]],
    ids=["metrics-last", "metrics-first", "metrics-between"],
)
def test_the_socket_named_metrics_goes_to_the_master(make_instance, tmp_path, names):
    instance = make_instance(start=True)
    ports = {name: instance.port if name == "http" else free_port() for name in names}
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    command = [
        instance.build.python,
        str(launcher),
        ":".join(names),
        ":".join(str(ports[name]) for name in names),
        instance.build.tool("bitpoll-server"),
    ]
    # BITPOLL_METRICS_LISTEN names another port: what the master serves on is the passed socket.
    unused = free_port()
    (tmp_path / "metrics").mkdir()
    master = launch(instance, command, metrics_env(instance, unused, tmp_path / "metrics"))

    http = [name for name in names if name != "metrics"]
    env = environ(master)
    assert env["BITPOLL_METRICS_FD"] == str(3 + len(http))
    assert env["LISTEN_FDS"] == str(len(http)) and env["LISTEN_FDNAMES"] == ":".join(http)
    # gunicorn serves Bitpoll on the HTTP sockets (in their order) and nowhere else; the master
    # alone holds the metrics socket; nothing was bound on BITPOLL_METRICS_LISTEN.
    everything = {("127.0.0.1", port) for port in ports.values()}
    assert listening(master) == everything
    for worker in workers(master):
        assert listening(worker) == everything - {("127.0.0.1", ports["metrics"])}
    for name in http:
        status, _, body = fetch(f"http://127.0.0.1:{ports[name]}/")
        assert status == 200 and b"Bitpoll" in body
        assert fetch(f"http://127.0.0.1:{ports[name]}/metrics")[0] == 404
    assert fetch(f"http://127.0.0.1:{ports['metrics']}/")[0] == 404
    samples = scrape(ports["metrics"])
    assert value(samples, "bitpoll_info", version=instance.build.version) == 1
    assert value(samples, "bitpoll_http_requests_total", method="GET", status="200", view="index") == len(
        http
    )
    assert (
        f"metrics at http://127.0.0.1:{ports['metrics']}/metrics (socket fd {3 + len(http)})"
        in instance.log_tail(100)
    )


def test_a_metrics_socket_without_metrics_is_refused(make_instance, tmp_path):
    instance = make_instance(start=True)
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    command = [
        instance.build.python,
        str(launcher),
        "http:metrics",
        f"{instance.port}:{free_port()}",
        instance.build.tool("bitpoll-server"),
    ]
    env = instance.env()
    env.pop("BITPOLL_METRICS_LISTEN", None)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert result.stderr.strip().splitlines() == [
        "bitpoll: configuration error: systemd passed a socket named metrics but BITPOLL_METRICS_LISTEN is not "
        "set; set it to the socket's HOST:PORT, or drop the socket"
    ]


@pytest.mark.parametrize(
    "listen, directory, message",
    [
        ("127.0.0.1:9150", None, "PROMETHEUS_MULTIPROC_DIR is not set;"),
        ("127.0.0.1:9150", "metrics", "PROMETHEUS_MULTIPROC_DIR=metrics is not an absolute path"),
        (
            "127.0.0.1:9150",
            "{tmp}/missing",
            "PROMETHEUS_MULTIPROC_DIR={tmp}/missing is not a writable directory;",
        ),
        (
            "127.0.0.1:9150",
            "{tmp}/a-file",
            "PROMETHEUS_MULTIPROC_DIR={tmp}/a-file is not a writable directory;",
        ),
        ("9150", "{tmp}", "BITPOLL_METRICS_LISTEN=9150 is not HOST:PORT"),
        ("::1:9150", "{tmp}", "BITPOLL_METRICS_LISTEN=::1:9150 is not HOST:PORT"),
        ("127.0.0.1:70000", "{tmp}", "BITPOLL_METRICS_LISTEN=127.0.0.1:70000 is not HOST:PORT"),
    ],
)
def test_bad_metrics_settings_stop_the_server_with_one_line(
    make_instance, tmp_path, listen, directory, message
):
    instance = make_instance(start=True)
    (tmp_path / "a-file").write_text("")
    env = {"BITPOLL_METRICS_LISTEN": listen}
    if directory is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = directory.format(tmp=tmp_path)
    result = instance.tool(
        "bitpoll-server", "--bind", f"127.0.0.1:{instance.port}", check=False, timeout=60, **env
    )
    assert result.returncode == 78, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "bitpoll: configuration error: " + message.format(tmp=tmp_path)
    )
    assert os.path.exists(tmp_path / "a-file")
