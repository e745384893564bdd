"""The process testbed's command line (ci/testbed/bitpoll-testbed), as the harness tests use it."""

import os
import subprocess
import urllib.request

from package_paths import REPO

TESTBED = os.path.join(REPO, "ci", "testbed", "bitpoll-testbed")


def test_start_prints_the_instance_and_stop_removes_everything(build, tmp_path):
    directory = tmp_path / "instance"
    result = subprocess.run(
        [
            TESTBED,
            "start",
            "--src",
            os.environ["BITPOLL_SRC"],
            "--dir",
            str(directory),
            "--generated-secrets",
            "--version",
            build.version,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    values = dict(line.split("=", 1) for line in result.stdout.splitlines())
    try:
        assert values["STATE_DIR"] == str(directory / "state") and values["DB"] == "sqlite"
        assert "CREDENTIALS_DIRECTORY" not in values  # --generated-secrets
        assert os.path.exists(os.path.join(values["STATE_DIR"], "secrets", "encryption_key"))
        assert values["BIN_DIR"] == build.bin_dir  # the cached build is shared with pytest's
        with urllib.request.urlopen(values["BASE_URL"] + "/", timeout=10) as response:
            assert response.status == 200
        pid = int(values["SERVER_PID"])
        os.kill(pid, 0)
    finally:
        stop = subprocess.run(
            [TESTBED, "stop", "--dir", str(directory), "--remove"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert stop.returncode == 0, stop.stderr
    assert not directory.exists()
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the server outlived stop"


def test_stop_of_an_unknown_directory(tmp_path):
    result = subprocess.run([TESTBED, "stop", "--dir", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"bitpoll-testbed: error: {tmp_path}/testbed.json not found; is {tmp_path} a testbed directory?"
    )
