"""Where the package's files are, and the import path the tests need (ci/testbed, package/files).

A module of its own rather than conftest.py: other test directories have a conftest.py too, and
`from conftest import ...` could pick up theirs.
"""

import os
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(TESTS))
FILES = os.path.join(REPO, "package", "files")
PINS = os.path.join(REPO, "package", "pins")

for path in (os.path.join(REPO, "ci", "testbed"), FILES, TESTS):
    if path not in sys.path:
        sys.path.insert(0, path)
