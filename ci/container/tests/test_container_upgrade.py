"""An upgrade as `nixos-rebuild switch` performs it: Bitpoll 0.10 (Python 3.11) runs, 0.11
(Python 3.12) is installed beside it, `bitpoll-testbed-switch` (run over SSH, as the harness
would) installs the new units, reloads systemd and restarts the service. The prestart step
migrates the database under the full sandbox, the data survives, and the socket answers every
request sent during the switch."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from nspawn_support import create_poll, journal, require_host, requests_across, sh, show, testbed


@pytest.fixture(scope="module")
def upgrade_container(tmp_path_factory):
    current, previous = os.environ.get("BITPOLL_SRC"), os.environ.get("BITPOLL_SRC_PREVIOUS")
    if not current or not previous:
        pytest.skip(
            "BITPOLL_SRC and BITPOLL_SRC_PREVIOUS must both be set (checkouts of Bitpoll 0.11 and 0.10) for "
            "the upgrade test"
        )
    require_host()
    old, new = testbed.prepare_layout(Path(previous)), testbed.prepare_layout(Path(current))
    box = testbed.Container(tmp_path_factory.mktemp("upgrade-container") / "state", stop_with_caller=True)
    box.info_values = box.up(old, other_layout_bins=[new])
    yield box
    problems = box.down()
    assert not problems, f"the container left: {problems}"


def running_package(container):
    """The main process's command line (gunicorn's --pythonpath names the package's app)."""
    pid = show(container, "bitpoll.service", "MainPID")["MainPID"]
    return sh(container, "cat", f"/proc/{pid}/cmdline").stdout.replace("\0", " ")


def test_switch_to_the_new_package_migrates_keeps_data_and_refuses_no_request(upgrade_container):
    box = upgrade_container
    info = box.info_values
    packages = dict(entry.split("=", 1) for entry in info["PACKAGES"].split(","))
    old_version = info["BITPOLL_VERSION"]
    new_version = next(version for version in packages if version != old_version)
    assert f"{packages[old_version]}/lib/bitpoll" in running_package(box)

    slug = f"upgrade-{int(time.time() * 1000)}"
    browser = create_poll(info["BASE_URL"], slug, "Poll from before the upgrade")
    form = browser.form(f"/poll/{slug}/vote/")
    vote = {"csrfmiddlewaretoken": form.csrf, "name": "Early Voter", "comment": ""}
    vote.update({choice: values[0] for choice, values in form.radios.items()})
    assert browser.request(f"/poll/{slug}/vote/", vote)[0] == 302
    marker = sh(box, "cat", f"{info['SERVICE_STATE_DIR']}/.bitpoll-migrated").stdout

    switch = [
        "ssh",
        "-F",
        info["SSH_CONFIG"],
        "-o",
        "BatchMode=yes",
        "127.0.0.1",
        "bitpoll-testbed-switch",
        new_version,
    ]
    load = requests_across(box, switch)
    assert load.returncode == 0, load.stderr + journal(box)
    load.check()

    assert f"{packages[new_version]}/lib/bitpoll" in running_package(
        box
    ), "the service does not run the new package"
    assert sh(box, "cat", "/etc/bitpoll-testbed/current").stdout.strip() == new_version
    # The prestart step saw the new package and migrated, and recorded it.
    log = sh(box, "journalctl", "--no-pager", "-u", "bitpoll.service", "-t", "bitpoll-ops").stdout
    assert "Applying poll.0020_alter_poll_allow_unauthenticated_vote_changes... OK" in log, log[-3000:]
    assert sh(box, "cat", f"{info['SERVICE_STATE_DIR']}/.bitpoll-migrated").stdout != marker
    migrations = sh(box, "bitpoll-manage", "showmigrations", "poll").stdout
    assert "[X] 0020_alter_poll_allow_unauthenticated_vote_changes" in migrations, migrations
    # The data from before the upgrade is served by the new version.
    status, _, body = browser.request(f"/poll/{slug}/")
    assert status == 200 and "Poll from before the upgrade" in body
    assert "Early Voter" in browser.request(f"/poll/{slug}.csv")[2]
    # Switching again is a no-op, as switch-to-configuration with unchanged units is.
    pid = show(box, "bitpoll.service", "MainPID")["MainPID"]
    again = subprocess.run(switch, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "no unit changed" in again.stdout, again.stdout + again.stderr
    assert show(box, "bitpoll.service", "MainPID")["MainPID"] == pid
    # An unknown version is refused with the list of known ones.
    refused = subprocess.run(switch[:-1] + ["9.9.9"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and new_version in refused.stderr
