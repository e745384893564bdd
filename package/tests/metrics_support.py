"""What the metrics tests share: starting bitpoll-server with metrics, reading the exposition,
the per-process files and the sockets a process tree listens on (from /proc)."""

import concurrent.futures
import json
import os
import re
import socket
import subprocess
import textwrap
import time

from test_runtime import fetch

from testbed_instance import free_port

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
INDEX = {"method": "GET", "status": "200", "view": "index"}


def parse(text):
    """The exposition's samples as {(name, frozenset(labels)): value}."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def value(samples, name, **labels):
    """A sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(port, host="127.0.0.1"):
    status, headers, body = fetch(f"http://{host}:{port}/metrics")
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
    return parse(body.decode())


def index_requests(port):
    return value(scrape(port), "bitpoll_http_requests_total", **INDEX)


def get_many(url, count, concurrency=8):
    """`count` GETs of `url`, `concurrency` at a time; their statuses."""
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda _: fetch(url)[0], range(count)))


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


# Processes and sockets


def children(pid):
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return sorted(found)


def workers(master, count=2):
    """gunicorn's workers once all `count` have started (the first answers before the second is
    forked)."""
    return wait_for(lambda: len(children(master)) == count and children(master), 60, f"{count} workers")


def _socket_inodes(pid):
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _address(hex_address, family):
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    # /proc/net/tcp{,6} print each 32-bit word in host (little-endian) order.
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(family, raw), int(port, 16)


def listening(pid):
    """The TCP addresses (host, port) that process `pid` listens on."""
    inodes = _socket_inodes(pid)
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[9]) in inodes:
                    found.add(_address(fields[1], family))
    return found


# The server with metrics


def metrics_env(instance, port, directory, host="127.0.0.1"):
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return instance.env(BITPOLL_METRICS_LISTEN=listen, PROMETHEUS_MULTIPROC_DIR=str(directory))


def launch(instance, command, env):
    """Start `command` (bitpoll-server or a launcher that execs it) as the instance's server, so
    that the fixture's instance.stop() stops it; wait for Bitpoll's health endpoint."""
    log = open(os.path.join(instance.log_dir, "server.log"), "ab")
    instance.server_log = log.name
    instance.server = subprocess.Popen(
        command, env=env, cwd=instance.dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()

    def up():
        if instance.server.poll() is not None:
            raise AssertionError(
                f"the server exited with {instance.server.returncode}:\n{instance.log_tail()}"
            )
        try:
            return fetch(instance.base_url + "/-/health")[0] == 200
        except OSError:
            return False

    wait_for(up, 90, "the server to answer")
    return instance.server.pid


def start(instance, directory, *args, host="127.0.0.1", port=None):
    """bitpoll-server with metrics on 127.0.0.1:<port>, gunicorn's arguments after --bind."""
    port = port or free_port()
    command = [instance.build.tool("bitpoll-server"), "--bind", f"127.0.0.1:{instance.port}", *args]
    pid = launch(instance, command, metrics_env(instance, port, directory, host))
    return pid, port


# The per-process files, read by the build's own prometheus_client

READ_FILES = textwrap.dedent("""
    import glob, json, os, sys
    from prometheus_client.mmap_dict import MmapedDict
    found = {}
    for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.db"))):
        found[os.path.basename(path)] = [
            [json.loads(key), value] for key, value, _, _ in MmapedDict.read_all_values_from_file(path)]
    print(json.dumps(found))
    """)


def index_counts_by_file(build, directory):
    """{file name: GET / 200 responses it holds} for the counter files in `directory`."""
    output = subprocess.run(
        [build.python, "-c", READ_FILES, str(directory)], capture_output=True, text=True, check=True
    ).stdout
    counts = {}
    for name, entries in json.loads(output).items():
        if name.startswith("counter_"):
            counts[name] = sum(
                value
                for (_metric, sample, labels, _help), value in entries
                if sample == "bitpoll_http_requests_total" and labels == INDEX
            )
    return counts
