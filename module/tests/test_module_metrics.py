"""services.bitpoll.metrics: the options, the units with metrics on and off, the scrape job for a
Prometheus on the same machine, the assertions, and nginx keeping the metrics private.

The module evaluations need NIXPKGS_LIB (nixpkgs' lib) and use the NixOS options of
facts/nixpkgs.toml; the rendered units (ci/render-units) need plain Nix only.
"""

import json
import shutil
import subprocess

import pytest

from module_helpers import (
    NixError,
    evaluate_module,
    needs_nix,
    needs_nixpkgs_lib,
    parse_unit,
    render_units,
)

ENABLE = "services.bitpoll.enable = true;"
METRICS = "services.bitpoll.metrics.enable = true;"
METRICS_ENVIRONMENT = {"BITPOLL_METRICS_LISTEN", "PROMETHEUS_MULTIPROC_DIR"}


def config(body: str = "") -> str:
    return "{ " + ENABLE + " " + body + " }"


@pytest.fixture(scope="module")
def default():
    return evaluate_module(config())


@pytest.fixture(scope="module")
def metrics_on():
    return evaluate_module(config(METRICS))


# Options.


@needs_nixpkgs_lib
def test_the_metrics_options_are_declared_with_their_defaults():
    options = {option["name"]: option for option in evaluate_module(config(), attr="options")}
    for name, kind in [
        ("enable", "boolean"),
        ("listenAddress", "string"),
        ("port", "16 bit unsigned integer; between 0 and 65535 (both inclusive)"),
        ("allowRemote", "boolean"),
        ("scrape", "boolean"),
    ]:
        option = options[f"services.bitpoll.metrics.{name}"]
        assert option["type"] == kind, name
        assert option["hasDescription"] and option["hasDefault"] and option["hasExample"], name


@needs_nixpkgs_lib
def test_a_bad_metrics_port_is_a_type_error():
    with pytest.raises(NixError, match="services.bitpoll.metrics.port"):
        evaluate_module(config(METRICS + " services.bitpoll.metrics.port = 70000;"))


# Units: none of it without metrics, all of it with.


@needs_nixpkgs_lib
def test_metrics_are_off_by_default_and_leave_no_trace(default):
    assert sorted(default["sockets"]) == ["bitpoll"]
    service = default["services"]["bitpoll"]
    assert not METRICS_ENVIRONMENT & set(service["environment"])
    assert "Sockets" not in service["serviceConfig"]
    assert "RuntimeDirectory" not in service["serviceConfig"]
    assert service["requires"] == ["bitpoll.socket"]
    assert default["prometheus"]["scrapeConfigs"] == []
    assert all("PROMETHEUS" not in w["text"] and "METRICS" not in w["text"] for w in default["wrappers"])


@needs_nixpkgs_lib
def test_metrics_socket_and_what_the_service_gets(metrics_on):
    assert metrics_on["assertions"] == [] and metrics_on["warnings"] == []
    socket = metrics_on["sockets"]["bitpoll-metrics"]
    assert socket["listenStreams"] == ["127.0.0.1:8081"]
    assert socket["socketConfig"] == {"FileDescriptorName": "metrics", "Service": "bitpoll.service"}
    assert socket["wantedBy"] == ["sockets.target"]
    service = metrics_on["services"]["bitpoll"]
    assert service["serviceConfig"]["Sockets"] == ["bitpoll.socket", "bitpoll-metrics.socket"]
    assert service["serviceConfig"]["RuntimeDirectory"] == ["bitpoll-metrics"]
    assert service["serviceConfig"]["RuntimeDirectoryMode"] == "0700"
    assert service["environment"]["BITPOLL_METRICS_LISTEN"] == "127.0.0.1:8081"
    assert service["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/run/bitpoll-metrics"
    # Ordered after the metrics socket and requiring it, as bitpoll.socket: metrics asked for
    # are served, or the start fails naming the socket.
    assert service["after"][-2:] == ["bitpoll.socket", "bitpoll-metrics.socket"]
    assert service["requires"] == ["bitpoll.socket", "bitpoll-metrics.socket"]
    # The sandbox is the same: the socket unit, not the service, owns the listener.
    assert service["serviceConfig"]["PrivateNetwork"] is True
    assert service["serviceConfig"]["IPAddressDeny"] == "any"
    assert service["serviceConfig"]["RestrictAddressFamilies"] == ["AF_UNIX"]


@needs_nixpkgs_lib
def test_only_the_web_service_counts(metrics_on):
    for name, service in metrics_on["services"].items():
        if name != "bitpoll":
            assert not METRICS_ENVIRONMENT & set(service["environment"]), name
            assert "RuntimeDirectory" not in service["serviceConfig"], name
    for wrapper in metrics_on["wrappers"]:
        assert "PROMETHEUS" not in wrapper["text"] and "bitpoll-metrics" not in wrapper["text"], wrapper[
            "name"
        ]


@needs_nixpkgs_lib
def test_both_sockets_share_a_listen_target_that_metrics_rename(default, metrics_on):
    """A switch applies a changed socket only through a renamed listen target (module/listen.nix):
    turning metrics on, or moving them, must rename it; without metrics it is what it was."""
    (target,) = metrics_on["targets"]
    for name in ["bitpoll", "bitpoll-metrics"]:
        socket = metrics_on["sockets"][name]
        assert socket["bindsTo"] == [f"{target}.target"] and socket["after"] == [f"{target}.target"]
    assert list(default["targets"]) != [target]
    moved = evaluate_module(config(METRICS + " services.bitpoll.metrics.port = 9464;"))
    assert list(moved["targets"]) not in ([target], list(default["targets"]))
    assert moved["targets"][list(moved["targets"])[0]]["description"] == (
        "Bitpoll listens on 127.0.0.1:8080 (metrics on 127.0.0.1:9464)"
    )


@needs_nixpkgs_lib
def test_ipv6_and_remote_metrics_listeners():
    result = evaluate_module(config(METRICS + ' services.bitpoll.metrics.listenAddress = "::1";'))
    assert result["sockets"]["bitpoll-metrics"]["listenStreams"] == ["[::1]:8081"]
    assert result["services"]["bitpoll"]["environment"]["BITPOLL_METRICS_LISTEN"] == "[::1]:8081"
    remote = evaluate_module(
        config(METRICS + ' services.bitpoll.metrics = { listenAddress = "192.0.2.7"; allowRemote = true; };')
    )
    assert remote["assertions"] == []
    # A specific address may not be up when sockets.target starts.
    assert remote["sockets"]["bitpoll-metrics"]["socketConfig"]["FreeBind"] is True


# The scrape job.

PROMETHEUS = "services.prometheus.enable = true; services.bitpoll.metrics.scrape = true;"


@needs_nixpkgs_lib
@pytest.mark.parametrize(
    ("address", "target"),
    [
        ("127.0.0.1", "127.0.0.1:8081"),
        ("::1", "[::1]:8081"),
        ("0.0.0.0", "127.0.0.1:8081"),
        ("::", "[::1]:8081"),
    ],
)
def test_a_local_prometheus_scrapes_the_metrics_listener(address, target):
    result = evaluate_module(
        config(
            METRICS
            + PROMETHEUS
            + f' services.bitpoll.metrics = {{ listenAddress = "{address}"; allowRemote = true; }};'
        )
    )
    assert result["assertions"] == []
    assert result["prometheus"]["scrapeConfigs"] == [
        {"job_name": "bitpoll", "static_configs": [{"targets": [target]}]}
    ]


@needs_nixpkgs_lib
def test_no_scrape_job_unless_asked():
    result = evaluate_module(config(METRICS + " services.prometheus.enable = true;"))
    assert result["prometheus"]["scrapeConfigs"] == []


# Assertions: each fires for its bad configuration, naming the option, and stays silent for the
# corrected one.

ASSERTIONS = [
    pytest.param(
        METRICS + " services.bitpoll.metrics.port = 8080;",
        METRICS + " services.bitpoll.metrics.port = 8080; services.bitpoll.port = 8000;",
        "services.bitpoll.metrics.port and services.bitpoll.port are both 8080",
        id="metrics-on-the-app-port",
    ),
    pytest.param(
        METRICS + ' services.bitpoll.metrics.listenAddress = "0.0.0.0";',
        METRICS + ' services.bitpoll.metrics = { listenAddress = "0.0.0.0"; allowRemote = true; };',
        "services.bitpoll.metrics.listenAddress is 0.0.0.0, which other machines can reach",
        id="remote-metrics-without-opt-in",
    ),
    pytest.param(
        METRICS + ' services.bitpoll.metrics.listenAddress = "localhost";',
        METRICS + ' services.bitpoll.metrics.listenAddress = "127.0.0.1";',
        'services.bitpoll.metrics.listenAddress is "localhost", but systemd listens on an IP address',
        id="metrics-on-a-host-name",
    ),
    pytest.param(
        "services.prometheus.enable = true; services.bitpoll.metrics.scrape = true;",
        METRICS + " services.prometheus.enable = true; services.bitpoll.metrics.scrape = true;",
        "but they are off: set services.bitpoll.metrics.enable = true",
        id="scrape-without-metrics",
    ),
    pytest.param(
        METRICS + " services.bitpoll.metrics.scrape = true;",
        METRICS + " services.bitpoll.metrics.scrape = true; services.prometheus.enable = true;",
        "services.prometheus.enable is off: set services.prometheus.enable = true",
        id="scrape-without-prometheus",
    ),
]


@needs_nixpkgs_lib
@pytest.mark.parametrize(("bad", "good", "message"), ASSERTIONS)
def test_assertion_fires_for_bad_and_not_for_good_configuration(bad, good, message):
    failed = evaluate_module(config(bad))["assertions"]
    assert len(failed) == 1, failed
    assert message in failed[0]
    assert failed[0].count("\n") == 0, "one line"
    assert evaluate_module(config(good))["assertions"] == []


@needs_nixpkgs_lib
def test_a_unix_socket_frees_the_app_port_for_the_metrics():
    result = evaluate_module(
        config(
            METRICS
            + ' services.bitpoll.metrics.port = 8080; services.bitpoll.unixSocket = "/run/bitpoll/bitpoll.sock";'
        )
    )
    assert result["assertions"] == []
    assert result["sockets"]["bitpoll-metrics"]["listenStreams"] == ["127.0.0.1:8080"]


# nginx: the public virtual host has no way to the metrics.


@needs_nixpkgs_lib
@pytest.mark.parametrize("listen", ["", ' services.bitpoll.unixSocket = "/run/bitpoll/bitpoll.sock";'])
def test_nginx_never_proxies_the_metrics(listen):
    result = evaluate_module(
        config(
            METRICS + ' services.bitpoll.nginx = { enable = true; hostName = "polls.example.org"; };' + listen
        )
    )
    assert result["assertions"] == []
    nginx = result["nginx"]
    # The upstream is Bitpoll's own listener only, never the metrics socket.
    servers = list(nginx["upstreams"]["bitpoll"]["servers"])
    assert servers in (["127.0.0.1:8080"], ["unix:/run/bitpoll/bitpoll.sock"])
    assert not any(":8081" in server for server in servers)
    (vhost,) = nginx["virtualHosts"].values()
    for path, location in vhost["locations"].items():
        assert "metrics" not in path, path
        assert location.get("proxyPass") in (None, "http://bitpoll"), path
        assert "8081" not in json.dumps(location) and "metrics" not in json.dumps(location), path


# The same units without nixpkgs (ci/render-units), as the container testbed and the offline
# hardening gate use them.


@needs_nixpkgs_lib
def test_module_units_equal_the_pure_unit_data_with_metrics(metrics_on, tmp_path):
    service = metrics_on["services"]["bitpoll"]
    package = service["serviceConfig"]["ExecStart"].split("/bin/")[0]
    result = render_units(
        tmp_path,
        "--package",
        package,
        "--settings-file",
        service["environment"]["BITPOLL_SETTINGS_FILE"],
        "--no-backup",
        "--metrics-port",
        "8081",
    )
    assert result.returncode == 0, result.stderr
    units = json.loads((tmp_path / "units.json").read_text())["units"]
    pure = units["bitpoll.service"]
    assert service["serviceConfig"] == pure["Service"]
    assert service["environment"] == pure["environment"]
    assert service["after"] == pure["Unit"]["After"] and service["requires"] == pure["Unit"]["Requires"]
    socket = units["bitpoll-metrics.socket"]
    mapped = metrics_on["sockets"]["bitpoll-metrics"]
    assert mapped["listenStreams"] == socket["Socket"]["ListenStream"]
    assert mapped["socketConfig"] == {k: v for k, v in socket["Socket"].items() if k != "ListenStream"}
    assert [f"{name}.target" for name in metrics_on["targets"]] == socket["Unit"]["BindsTo"]


@needs_nix
def test_rendered_metrics_units(tmp_path):
    assert render_units(tmp_path, "--metrics-port", "9464", "--metrics-address", "::1").returncode == 0
    socket = parse_unit((tmp_path / "bitpoll-metrics.socket").read_text())
    assert socket["Socket"] == {
        "ListenStream": ["[::1]:9464"],
        "FileDescriptorName": ["metrics"],
        "Service": ["bitpoll.service"],
    }
    service = parse_unit((tmp_path / "bitpoll.service").read_text())
    assert service["Service"]["Sockets"] == ["bitpoll.socket", "bitpoll-metrics.socket"]
    assert service["Service"]["RuntimeDirectory"] == ["bitpoll-metrics"]
    assert 'Environment="BITPOLL_METRICS_LISTEN=[::1]:9464"' in (tmp_path / "bitpoll.service").read_text()
    for name in [
        "bitpoll-backup.service",
        "bitpoll-clearsessions.service",
        "bin/bitpoll-manage",
        "bin/bitpoll-ops",
    ]:
        assert "METRICS" not in (tmp_path / name).read_text(), name


@needs_nix
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics-port", "8080"], "--metrics-port 8080 is the port Bitpoll itself listens on"),
        (["--metrics-address", "::1"], "--metrics-address needs --metrics-port"),
    ],
)
def test_render_units_refuses_contradictory_metrics(tmp_path, args, message):
    result = render_units(tmp_path, *args)
    assert result.returncode == 2 and message in result.stderr


needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not found (Debian package systemd)"
)


@needs_nix
@needs_analyze
def test_metrics_keep_the_exposure_and_systemd_accepts_the_units(tmp_path):
    package = tmp_path / "package"
    (package / "bin").mkdir(parents=True)
    for name in ["bitpoll-server", "bitpoll-ops", "bitpoll-manage"]:
        (package / "bin" / name).write_text("#!/bin/sh\n")
        (package / "bin" / name).chmod(0o755)
    out = tmp_path / "units"
    assert render_units(out, "--package", str(package), "--metrics-port", "8081").returncode == 0
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", "bitpoll.service"],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    score = float(result.stdout.rsplit("Overall exposure level for bitpoll.service: ", 1)[1].split()[0])
    print(f"bitpoll.service with metrics: {score}")
    assert score <= 0.2
    names = [p.name for p in sorted(out.iterdir()) if p.suffix in (".service", ".socket", ".timer")]
    assert "bitpoll-metrics.socket" in names and len(names) == 7
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr
