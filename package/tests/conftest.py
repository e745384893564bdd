"""Fixtures for the package's runtime pieces: the settings shim, the ops tool, the wrappers.

Tests that need a real Bitpoll use the process testbed (ci/testbed) on the checkout named by
BITPOLL_SRC (0.11.0) and BITPOLL_SRC_PREVIOUS (0.10.0); without them they are skipped with that
reason.  The build (venv and app) is made once per session and cached across sessions.
"""

import json
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from package_paths import PINS  # noqa: E402  (also puts ci/testbed and package/files on sys.path)

import bitpoll_testbed as testbed  # noqa: E402


def pinned_versions():
    """The pinned releases, newest first (package/pins/bitpoll-*.json)."""
    versions = []
    for name in os.listdir(PINS):
        if name.endswith(".json"):
            with open(os.path.join(PINS, name)) as handle:
                versions.append(json.load(handle)["version"])
    return sorted(versions, key=lambda v: tuple(int(p) for p in v.split(".")), reverse=True)


def checkout(variable):
    src = os.environ.get(variable)
    if not src:
        pytest.skip(f"{variable} is not set: it names a Bitpoll checkout these tests run against")
    if not os.path.exists(os.path.join(src, "manage.py")):
        pytest.fail(f"{variable}={src} is not a Bitpoll checkout (no manage.py)")
    return src


@pytest.fixture(scope="session")
def build():
    """Bitpoll (BITPOLL_SRC, the current pin) laid out as the package, built once."""
    return testbed.prepare(checkout("BITPOLL_SRC"), version=pinned_versions()[0])


@pytest.fixture(scope="session")
def previous_build():
    """The previous release (BITPOLL_SRC_PREVIOUS) with its own Python and requirements."""
    return testbed.prepare(checkout("BITPOLL_SRC_PREVIOUS"), version=pinned_versions()[1])


@pytest.fixture
def make_instance(build, tmp_path):
    """Create testbed instances in this test's directory; all are stopped at the end."""
    instances = []

    def make(name="instance", start=True, server=False, build_=None, **kwargs):
        instance = testbed.Instance(build_ or build, str(tmp_path / name), **kwargs)
        instances.append(instance)
        if start:
            instance.start(server=server)
        return instance

    yield make
    for instance in instances:
        instance.stop()
        if instance.pg_dir:  # outside tmp_path, see testbed.Instance
            shutil.rmtree(instance.pg_dir, ignore_errors=True)
