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

# The ops tool: bitpoll_ops.py, the program, and the modules it imports, all installed side by side
# in the app directory (package/default.nix and the testbed take every bitpoll_ops*.py likewise).
OPS_MODULES = sorted(
    name for name in os.listdir(FILES) if name.startswith("bitpoll_ops") and name.endswith(".py")
)
