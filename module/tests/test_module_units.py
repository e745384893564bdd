"""The units as pure data (module/units.nix, hardening.nix, render.nix) and ci/render-units.

These need plain Nix only, no nixpkgs, and run always.
"""

import json
import re
import shutil
import subprocess

import pytest

from module_helpers import MODULE, NixError, needs_nix, nix_eval, parse_unit, render_units

pytestmark = needs_nix

SERVICES = ["bitpoll.service", "bitpoll-backup.service", "bitpoll-clearsessions.service"]


@pytest.fixture(scope="module")
def default_units(tmp_path_factory):
    out = tmp_path_factory.mktemp("units")
    result = render_units(out, "--credential", "secret_key=/run/keys/sk")
    assert result.returncode == 0, result.stderr
    return out


def unit(out, name):
    return parse_unit((out / name).read_text())


def test_renders_every_unit_and_lists_them(default_units):
    names = sorted(p.relative_to(default_units).as_posix() for p in default_units.rglob("*") if p.is_file())
    targets = [name for name in names if name.endswith(".target")]
    assert len(targets) == 1 and re.fullmatch(r"bitpoll-listen-[0-9a-f]{12}\.target", targets[0]), names
    assert names == sorted(
        [
            "bin/bitpoll-manage",
            "bin/bitpoll-ops",
            "bitpoll-backup.service",
            "bitpoll-backup.timer",
            "bitpoll-clearsessions.service",
            "bitpoll-clearsessions.timer",
            "bitpoll.service",
            "bitpoll.socket",
            "tmpfiles.d/bitpoll.conf",
            "units.json",
            *targets,
        ]
    )


def listen_target(unit_dir):
    return next(p.name for p in unit_dir.iterdir() if p.name.startswith("bitpoll-listen-"))


def test_the_socket_is_bound_to_a_target_named_after_its_listen_address(default_units, tmp_path):
    """switch-to-configuration ignores a changed socket unit; a listen change must therefore
    change a unit name the switch does act on (it stops removed units)."""
    socket = unit(default_units, "bitpoll.socket")
    target = listen_target(default_units)
    assert socket["Unit"]["BindsTo"] == [target] and socket["Unit"]["After"] == [target]
    assert unit(default_units, target)["Unit"]["Description"] == ["Bitpoll listens on 127.0.0.1:8080"]
    other_port, same = tmp_path / "port", tmp_path / "same"
    assert render_units(other_port, "--port", "8081").returncode == 0
    assert render_units(same, "--package", "/opt/other-package").returncode == 0
    assert listen_target(other_port) != target, "a port change must rename the listen target"
    assert listen_target(same) == target, "a package upgrade must keep the listen target (no socket restart)"


def test_free_bind_only_for_a_specific_non_loopback_address(tmp_path):
    for address, expected in (
        ("192.0.2.10", ["true"]),
        ("2001:db8::1", ["true"]),
        ("0.0.0.0", None),
        ("::", None),
        ("127.0.0.1", None),
        ("::1", None),
    ):
        out = tmp_path / address.replace(":", "_")
        assert render_units(out, "--address", address).returncode == 0
        assert unit(out, "bitpoll.socket")["Socket"].get("FreeBind") == expected, address


def test_service_is_socket_activated_and_runs_prestart_first(default_units):
    service = unit(default_units, "bitpoll.service")
    socket = unit(default_units, "bitpoll.socket")
    assert socket["Socket"]["ListenStream"] == ["127.0.0.1:8080"]
    assert socket["Install"]["WantedBy"] == ["sockets.target"]
    assert "bitpoll.socket" in service["Unit"]["Requires"]
    assert "bitpoll.socket" in service["Unit"]["After"]
    assert service["Service"]["ExecStartPre"] == ["/opt/bitpoll/bin/bitpoll-ops prestart"]
    assert service["Service"]["ExecStart"] == ["/opt/bitpoll/bin/bitpoll-server --workers 2"]
    assert service["Service"]["Type"] == ["notify"]
    assert service["Service"]["NotifyAccess"] == ["main"]
    assert service["Service"]["Restart"] == ["on-failure"]
    assert service["Service"]["RestartPreventExitStatus"] == ["78"]


def test_every_service_shares_user_environment_credentials_and_sandbox(default_units):
    for name in SERVICES:
        service = unit(default_units, name)["Service"]
        assert service["User"] == ["bitpoll"] and service["Group"] == ["bitpoll"], name
        assert service["LoadCredential"] == ["secret_key:/run/keys/sk"], name
        assert (
            'Environment="BITPOLL_SETTINGS_FILE=/etc/bitpoll/settings.json"'
            in (default_units / name).read_text()
        )
        assert service["StateDirectory"] == ["bitpoll"], name
        assert service["StateDirectoryMode"] == ["0700"], name
        assert service["PrivateNetwork"] == ["true"], name
        assert service["RestrictAddressFamilies"] == ["AF_UNIX"], name
        assert service["CapabilityBoundingSet"] == [""], name
        assert service["UMask"] == ["0077"], name


def test_backup_job_writes_only_its_directory_on_its_timer(default_units):
    backup = unit(default_units, "bitpoll-backup.service")["Service"]
    assert backup["ExecStart"] == ["/opt/bitpoll/bin/bitpoll-ops backup --dir /var/backup/bitpoll --keep 14"]
    assert backup["Type"] == ["oneshot"]
    assert backup["ReadWritePaths"] == ["/var/backup/bitpoll"]
    assert "bitpoll.service" in unit(default_units, "bitpoll-backup.service")["Unit"]["After"]
    timer = unit(default_units, "bitpoll-backup.timer")
    assert timer["Timer"] == {"OnCalendar": ["daily"], "Persistent": ["true"]}
    assert timer["Install"]["WantedBy"] == ["timers.target"]
    assert (
        default_units / "tmpfiles.d/bitpoll.conf"
    ).read_text() == "d /var/backup/bitpoll 0700 bitpoll bitpoll -\n"
    # The web service itself cannot write the backups.
    assert "ReadWritePaths" not in unit(default_units, "bitpoll.service")["Service"]


def test_clearsessions_runs_manage_on_its_timer(default_units):
    service = unit(default_units, "bitpoll-clearsessions.service")["Service"]
    assert service["ExecStart"] == ["/opt/bitpoll/bin/bitpoll-manage clearsessions"]
    assert unit(default_units, "bitpoll-clearsessions.timer")["Timer"]["OnCalendar"] == ["daily"]


def test_wrappers_run_commands_in_a_transient_unit_with_the_service_properties(default_units, tmp_path):
    manage = (default_units / "bin/bitpoll-manage").read_text()
    assert manage.startswith("#!/bin/sh\n")
    for prop in [
        "User=bitpoll",
        "LoadCredential=secret_key:/run/keys/sk",
        "ProtectSystem=strict",
        'Environment="BITPOLL_STATE_DIR=/var/lib/bitpoll"',
        "WorkingDirectory=/var/lib/bitpoll",
    ]:
        assert f"-p '{prop}'" in manage
    # The ops wrapper may also write the backup directory (restore's safety backup).
    ops = (default_units / "bin/bitpoll-ops").read_text()
    assert "-p 'ReadWritePaths=/var/backup/bitpoll'" in ops
    assert "ReadWritePaths" not in manage
    # restore must see whether the server runs (its /proc entry, across user namespaces).
    assert "-p 'ProtectProc=default'" in ops and "-p 'ProtectProc=invisible'" not in ops
    assert "-p 'ProtectProc=invisible'" in manage
    # Run the wrapper against a fake systemd-run that prints its arguments: the shell quoting
    # must hand every property and argument over intact.
    fake = tmp_path / "systemd-run"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    out = tmp_path / "units"
    assert render_units(out, "--systemd-run", str(fake), "--env", 'NOTE=it\'s "here"').returncode == 0
    result = subprocess.run(
        ["sh", str(out / "bin/bitpoll-manage"), "shell", "-c", "print('a b')"],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    argv = result.stdout.splitlines()
    assert argv[:5] == ["--quiet", "--wait", "--collect", "--service-type=exec", "--pipe"]
    assert 'Environment="NOTE=it\'s \\"here\\""' in argv
    assert argv[-5:] == ["--", "/opt/bitpoll/bin/bitpoll-manage", "shell", "-c", "print('a b')"]


def test_unix_socket_and_outbound_addresses(tmp_path):
    result = render_units(
        tmp_path,
        "--socket",
        "/run/bitpoll/bitpoll.sock",
        "--socket-group",
        "nginx",
        "--outbound",
        "192.0.2.10/32",
        "--outbound",
        "localhost",
        "--no-backup",
    )
    assert result.returncode == 0, result.stderr
    socket = unit(tmp_path, "bitpoll.socket")["Socket"]
    assert socket["ListenStream"] == ["/run/bitpoll/bitpoll.sock"]
    assert socket["SocketGroup"] == ["nginx"] and socket["SocketMode"] == ["0660"]
    service = unit(tmp_path, "bitpoll.service")["Service"]
    assert service["PrivateNetwork"] == ["false"]
    assert service["RestrictAddressFamilies"] == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert service["IPAddressDeny"] == ["any"]
    assert service["IPAddressAllow"] == ["192.0.2.10/32", "localhost"]
    assert not (tmp_path / "bitpoll-backup.service").exists()
    assert (tmp_path / "tmpfiles.d/bitpoll.conf").read_text() == ""


def test_ipv6_listen_address_is_bracketed(tmp_path):
    assert render_units(tmp_path, "--address", "::1", "--port", "8443").returncode == 0
    assert unit(tmp_path, "bitpoll.socket")["Socket"]["ListenStream"] == ["[::1]:8443"]


def test_state_dir_outside_var_lib_uses_tmpfiles_and_read_write_paths(tmp_path):
    assert (
        render_units(
            tmp_path, "--state-dir", "/srv/bitpoll", "--backup-dir", "/var/lib/bitpoll-backups"
        ).returncode
        == 0
    )
    service = unit(tmp_path, "bitpoll.service")["Service"]
    assert "StateDirectory" not in service
    assert service["ReadWritePaths"] == ["/srv/bitpoll"]
    backup = unit(tmp_path, "bitpoll-backup.service")["Service"]
    # A backup directory below /var/lib is systemd's to create, next to the state directory.
    assert backup["StateDirectory"] == ["bitpoll-backups"]
    assert backup["ReadWritePaths"] == ["/srv/bitpoll"]
    assert (tmp_path / "tmpfiles.d/bitpoll.conf").read_text() == "d /srv/bitpoll 0700 bitpoll bitpoll -\n"


def test_exec_arguments_are_quoted_for_systemd(tmp_path):
    assert (
        render_units(tmp_path, "--package", "/opt/bit poll", "--backup-dir", "/var/backup/100%$x").returncode
        == 0
    )
    service = unit(tmp_path, "bitpoll.service")["Service"]
    assert service["ExecStart"] == ['"/opt/bit poll/bin/bitpoll-server" --workers 2']
    backup = unit(tmp_path, "bitpoll-backup.service")["Service"]
    assert backup["ExecStart"][0].endswith('--dir "/var/backup/100%%$$x" --keep 14')


def test_environment_values_are_escaped(tmp_path):
    assert render_units(tmp_path, "--env", 'GREETING=say "hi" 100%').returncode == 0
    text = (tmp_path / "bitpoll.service").read_text()
    assert 'Environment="GREETING=say \\"hi\\" 100%%"' in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--state-dir", "var/lib/bitpoll"], "stateDir must be an absolute path, got 'var/lib/bitpoll'"),
        (["--package", "result"], "package must be an absolute path, got 'result'"),
        (["--socket", "bitpoll.sock"], "listen.socket must be an absolute path"),
        (["--backup-dir", "backups"], "backup.directory must be an absolute path, got 'backups'"),
        (["--credential", "secret_key=key.txt"], "every credential must be an absolute path"),
    ],
)
def test_bad_inputs_are_refused_with_one_clear_line(tmp_path, args, message):
    result = render_units(tmp_path, *args)
    assert result.returncode == 1
    assert result.stderr.strip() == f"render-units: evaluation failed: bitpoll units: {message}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--credential", "api_token=/x"], "--credential: unknown name 'api_token'"),
        (["--workers", "0"], "argument --workers: expected a positive integer, got '0'"),
        (["--port", "70000"], "argument --port: expected a port number (1-65535), got '70000'"),
        (["--socket-group", "nginx"], "--socket-group needs --socket"),
        (["--env", "NOVALUE"], "argument --env: expected NAME=VALUE, got 'NOVALUE'"),
    ],
)
def test_bad_options_are_refused(tmp_path, args, message):
    result = render_units(tmp_path, *args)
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            '{ package = "/p"; settingsFile = "/s"; backup.enabled = true; }',
            "unknown backup settings: enabled (known: enable directory keep onCalendar)",
        ),
        (
            '{ package = "/p"; settingsFile = "/s"; clearsessions.calendar = "daily"; }',
            "unknown clearsessions settings: calendar (known: enable onCalendar)",
        ),
        (
            '{ package = "/p"; settingsFile = "/s"; stateDir = "/var/lib/"; }',
            "stateDir must name a directory without a trailing '/', got '/var/lib/'",
        ),
        ('{ package = "/p"; settingsFile = "/s"; workers = 0; }', "workers must be a positive integer"),
        (
            '{ package = "/p"; settingsFile = "/s"; listen = { port = 80; }; }',
            "listen needs either socket, or address and port",
        ),
        (
            '{ package = "/p"; settingsFile = "/s"; credentials.EMAIL_HOST_PASSWORD = "/run/secrets/smtp"; }',
            "credential names must be lower-case letters, digits, '_' and '-', got: EMAIL_HOST_PASSWORD",
        ),
    ],
)
def test_unit_data_refuses_typos_and_bad_values(tmp_path, arguments, message):
    expression = tmp_path / "units.nix"
    expression.write_text(f"import {MODULE / 'units.nix'} {arguments}")
    with pytest.raises(NixError) as error:
        nix_eval(expression)
    assert f"bitpoll units: {message}" in str(error.value)


def test_units_json_is_the_unit_data(default_units):
    data = json.loads((default_units / "units.json").read_text())
    assert set(data) == {"units", "tmpfiles", "wrappers"}
    assert data["units"]["bitpoll.service"]["Service"]["ProtectSystem"] == "strict"


# The hardening budget: systemd-analyze's exposure level of every service, offline.

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not found (Debian package systemd)"
)


def exposure(path) -> float:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for [^:]*: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


@needs_analyze
@pytest.mark.parametrize("name", SERVICES)
def test_default_services_score_within_budget(default_units, name):
    score = exposure(default_units / name)
    print(f"{name}: {score}")
    # Offline: no network at all, so well below the budget of 1.0.
    assert score <= 0.3


@needs_analyze
def test_outbound_service_scores_within_budget(tmp_path):
    assert render_units(tmp_path, "--outbound", "192.0.2.10/32").returncode == 0
    assert exposure(tmp_path / "bitpoll.service") <= 1.0


@needs_analyze
def test_the_gate_notices_a_weakened_sandbox(default_units, tmp_path):
    # Dropping a few directives must raise the score above the budget: proof the scoring reads
    # our directives rather than passing anything.
    text = (default_units / "bitpoll.service").read_text()
    weakened = "\n".join(
        line
        for line in text.splitlines()
        if not line.startswith(
            (
                "PrivateNetwork=",
                "ProtectSystem=",
                "CapabilityBoundingSet=",
                "SystemCallFilter=",
                "PrivateUsers=",
                "RestrictAddressFamilies=",
            )
        )
    )
    path = tmp_path / "bitpoll.service"
    path.write_text(weakened + "\n")
    assert exposure(path) > 1.0


# The flake check (module/checks/hardening.nix), its build script run here against rendered units.

FLAKE_CHECK = MODULE / "tests" / "fake-flake-check.nix"


def run_flake_check(unit_dir, out, budget="1.0"):
    script = nix_eval(FLAKE_CHECK, args={"unitDir": json.dumps(str(unit_dir)), "budget": json.dumps(budget)})
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={"out": str(out), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


@needs_analyze
def test_flake_check_scores_every_unit_and_passes_within_budget(default_units, tmp_path):
    result = run_flake_check(default_units, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "out").read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == SERVICES
    assert all(re.fullmatch(r"[\w.-]+: exposure [0-9.]+ \(budget 1\.0\)", line) for line in lines)


@needs_analyze
def test_flake_check_fails_above_budget(default_units, tmp_path):
    result = run_flake_check(default_units, tmp_path / "out", budget="0.1")
    assert result.returncode == 1
    assert "FAIL bitpoll.service: exposure 0.2 is above the budget 0.1" in result.stderr


@needs_analyze
@pytest.mark.parametrize(
    "variant",
    [
        [],
        [
            "--socket",
            "/run/bitpoll/bitpoll.sock",
            "--outbound",
            "192.0.2.10/32",
            "--state-dir",
            "/srv/bitpoll",
            "--credential",
            "db_password=/run/keys/pw",
        ],
    ],
)
def test_systemd_accepts_every_directive(tmp_path, variant):
    # `systemd-analyze verify` loads the units as systemd would: an unknown or malformed directive
    # is reported (and would be silently ignored at run time). It also wants the executables.
    package = tmp_path / "package"
    (package / "bin").mkdir(parents=True)
    for name in ["bitpoll-server", "bitpoll-ops", "bitpoll-manage"]:
        (package / "bin" / name).write_text("#!/bin/sh\n")
        (package / "bin" / name).chmod(0o755)
    out = tmp_path / "units"
    assert render_units(out, "--package", str(package), *variant).returncode == 0
    names = [p.name for p in sorted(out.iterdir()) if p.suffix in (".service", ".socket", ".timer")]
    assert len(names) == 6
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr
