"""Upgrade: data made with the previous release (BITPOLL_SRC_PREVIOUS, its own Python and pinned
requirements) survives the switch to the current one (BITPOLL_SRC) on the same state directory,
with exactly the one new migration applied; an archive from the previous release restores into
the current one with that migration."""

import re
import urllib.request

import bitpoll_testbed as testbed
from bitpoll_data import applied_migrations, seed, snapshot

NEW_MIGRATION = ("poll", "0020_alter_poll_allow_unauthenticated_vote_changes")


def test_previous_release_data_survives_upgrade(previous_build, build, make_instance):
    old = make_instance(build_=previous_build, credentials=False, server=True)
    # Each release on its own interpreter: 0.10 on upstream's Python 3.11, 0.11 on >= 3.12.
    assert testbed.python_version_of(previous_build.python) == "3.11"
    assert tuple(map(int, testbed.python_version_of(build.python).split("."))) >= (3, 12)
    seed(old, "old")
    before = snapshot(old)
    old_migrations = applied_migrations(old)
    assert NEW_MIGRATION not in old_migrations
    archive = re.search(r"wrote (\S+)", old.ops("backup").stdout).group(1)
    old.stop()

    # The same deployment (settings, state, secrets) with the new package: what a NixOS switch does.
    new = testbed.Instance(build, old.dir, credentials=False, port=old.port)
    try:
        result = new.ops("prestart")
        assert f"the package changed ({previous_build.version}" in result.stdout
        applied = re.findall(r"Applying (\S+)\.\.\.", result.stdout)
        assert applied == [".".join(NEW_MIGRATION)]
        assert applied_migrations(new) == old_migrations | {NEW_MIGRATION}
        assert snapshot(new) == before
        assert "nothing to migrate" in new.ops("prestart").stdout
        new.start_server()
        with urllib.request.urlopen(new.base_url + "/poll/lunch-old/", timeout=10) as response:
            assert response.status == 200 and "carol" in response.read().decode()
        new.stop_server()

        # The previous release's archive restores into the new one and is migrated.
        seed(new, "new")
        result = new.ops("restore", archive, "--yes")
        assert f"older than {build.version}" in result.stdout
        assert re.findall(r"Applying (\S+)\.\.\.", result.stdout) == [".".join(NEW_MIGRATION)]
        assert snapshot(new) == before
        assert applied_migrations(new) == old_migrations | {NEW_MIGRATION}
    finally:
        new.stop()
