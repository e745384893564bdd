"""The environment a testbed prints for a shell to load in one step (`eval "$(... --export)"`),
after which `bitpoll-harness run SCENARIO` needs no other argument or setup: the harness reads
its target, base URL and SSH settings from BITPOLL_HARNESS_* (harness/src/cli.rs), and, for the
local target, the package's commands find their settings, state and credentials as the module
gives them to the service. Shared by ci/testbed/bitpoll-testbed and ci/container/bitpoll-container.
"""

from __future__ import annotations

import shlex


def exports(variables: dict[str, str], path_first: list[str] | tuple = ()) -> str:
    """`export NAME=VALUE` lines, shell-quoted; `path_first` goes before the caller's PATH."""
    lines = [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]
    if path_first:
        lines.append(f'export PATH={shlex.quote(":".join(path_first))}:"$PATH"')
    return "\n".join(lines)
