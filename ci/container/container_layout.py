"""Bitpoll as the process testbed laid it out on the host, and how the container mounts it at
/nix/store-like paths."""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

from container_common import REPO, STORE, TEMPLATES, TestbedError, log, run, store_hash

# ---------------------------------------------------------------------------------------------
# The app layout: what the process testbed prepared, mapped to store paths inside the container.


class Layout:
    """Bitpoll as the process testbed laid it out on the host, read from its rendered wrappers.

    The wrappers are the contract: they name the interpreter, the app directory (manage.py, the
    `bitpoll` package with the settings shim, bitpoll_ops.py), the collected static files and the
    version. The container gets the same trees, read-only, at store paths, and wrappers rendered
    from the same templates (package/files/*.in) with those store paths.
    """

    WRAPPERS = ("bitpoll-manage", "bitpoll-server", "bitpoll-ops")

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        ops = bin_dir / "bitpoll-ops"
        if not ops.is_file():
            raise TestbedError(
                f"{ops} not found; pass --layout-bin the bin directory of the process testbed's layout "
                "(with bitpoll-manage, bitpoll-server, bitpoll-ops)"
            )
        text = ops.read_text()

        def field(pattern: str, what: str) -> str:
            match = re.search(pattern, text, re.M)
            if not match:
                raise TestbedError(
                    f"{ops}: cannot find {what}; it does not look rendered from package/files/bitpoll-ops.in"
                )
            return match.group(1)

        self.python = Path(field(r"^exec '([^']+)' '[^']+/bitpoll_ops\.py'", "the interpreter"))
        self.app_dir = Path(field(r"^export BITPOLL_APP_DIR='([^']+)'", "BITPOLL_APP_DIR"))
        self.static_root = Path(field(r"^export BITPOLL_STATIC_ROOT='([^']+)'", "BITPOLL_STATIC_ROOT"))
        self.version = field(r"^export BITPOLL_VERSION='([^']+)'", "BITPOLL_VERSION")
        for path, what in ((self.app_dir / "manage.py", "manage.py"), (self.static_root, "the static root")):
            if not path.exists():
                raise TestbedError(
                    f"{path} ({what}, named by {ops}) does not exist; rebuild the process testbed's layout"
                )

        # A venv: its pyvenv.cfg names the base interpreter's bin directory; the packages are in
        # its site-packages. A base interpreter is used as it is.
        venv = self.python.parent.parent
        cfg = venv / "pyvenv.cfg"
        if cfg.is_file():
            home = re.search(r"^home\s*=\s*(.+)$", cfg.read_text(), re.M)
            if not home:
                raise TestbedError(f"{cfg} has no 'home' line")
            self.base_prefix = Path(home.group(1).strip()).resolve().parent
            self.venv: Path | None = venv
        else:
            self.base_prefix = self.python.resolve().parent.parent
            self.venv = None
        out = run(
            [
                str(self.python),
                "-c",
                "import sys, sysconfig; print(sys.version_info[0], sys.version_info[1], "
                "sys.version.split()[0]); print(sysconfig.get_paths()['purelib'])",
            ]
        ).stdout.split("\n")
        major, minor, self.python_version = out[0].split()
        self.python_xy = f"python{major}.{minor}"
        self.site_packages = Path(out[1])
        base_python = self.base_prefix / "bin" / self.python_xy
        if not base_python.exists():
            raise TestbedError(
                f"{base_python} not found; the interpreter of {self.python} must live in a prefix with "
                f"bin/{self.python_xy}"
            )

        key = str(self.bin_dir.resolve())
        self.c_base = f"{STORE}/{store_hash('python', str(self.base_prefix))}-python3-{self.python_version}"
        self.c_env = f"{STORE}/{store_hash('env', key)}-bitpoll-python-env"
        self.c_package = f"{STORE}/{store_hash('package', key)}-bitpoll-{self.version}"
        self.c_app = f"{self.c_package}/lib/bitpoll"
        self.c_static = f"{self.c_package}/share/bitpoll/static"
        self.c_python = f"{self.c_env}/bin/python" if self.venv else f"{self.c_base}/bin/{self.python_xy}"

    def ensure_readable(self) -> None:
        """Every mounted tree must be readable by everyone, as the Nix store is: the service runs
        as `bitpoll`, not as the user who built the layout.

        A layout built under a restrictive umask (a test process that ran the ops tool in-process
        inherits its umask 077) has private files; they are opened up here, which changes no
        content and only brings the layout closer to what the package is.
        """
        trees = [self.base_prefix, self.app_dir, self.static_root] + (
            [self.site_packages] if self.venv else []
        )
        changed = 0
        for tree in trees:
            for directory, _, files in os.walk(tree):
                for name in [""] + files:
                    path = os.path.join(directory, name) if name else directory
                    try:
                        mode = os.lstat(path).st_mode
                    except OSError:
                        continue
                    if stat.S_ISLNK(mode):
                        continue
                    wanted = 0o055 if stat.S_ISDIR(mode) or mode & 0o100 else 0o044
                    if mode & wanted != wanted:
                        try:
                            os.chmod(path, stat.S_IMODE(mode) | wanted)
                        except OSError as exc:
                            raise TestbedError(
                                f"{path} is not readable by other users (mode {stat.S_IMODE(mode):04o}) and "
                                f"cannot be changed ({exc.strerror}); the service runs as 'bitpoll': "
                                "rebuild the layout under umask 022"
                            ) from None
                        changed += 1
        if changed:
            log(
                f"made {changed} files of the layout readable by other users, as the Nix store is (they "
                "were built under a restrictive umask)"
            )

    def render_wrapper(self, name: str) -> str:
        template = TEMPLATES / f"{name}.in"
        text = template.read_text()
        values = {
            "python": self.c_python,
            "appDir": self.c_app,
            "staticRoot": self.c_static,
            "version": self.version,
        }
        for key, value in values.items():
            text = text.replace(f"@{key}@", value)
        left = re.findall(r"@[A-Za-z]+@", text)
        if left:
            raise TestbedError(
                f"{template}: placeholders {', '.join(sorted(set(left)))} are unknown to the container "
                "testbed (ci/container/testbed.py)"
            )
        return text

    def assemble(self, store: Path) -> list[tuple[Path, str]]:
        """Write the small files of the store into `store` and return the bind mounts to add.

        The big trees (interpreter, site-packages, app, static files) are bind-mounted read-only
        over empty directories made here, so nothing is copied.
        """

        def host(container_path: str) -> Path:
            return store / container_path[len(STORE) + 1 :]

        mounts: list[tuple[Path, str]] = [(self.base_prefix, self.c_base)]
        # Two packages may share an interpreter (and then one store path for it).
        host(self.c_base).mkdir(parents=True, exist_ok=True)
        if self.venv:
            env = host(self.c_env)
            (env / "bin").mkdir(parents=True)
            (env / "pyvenv.cfg").write_text(
                f"home = {self.c_base}/bin\ninclude-system-site-packages = false\nversion = "
                f"{self.python_version}\n"
            )
            (env / "bin" / "python").symlink_to(f"{self.c_base}/bin/{self.python_xy}")
            (env / "bin" / "python3").symlink_to("python")
            site = env / "lib" / self.python_xy / "site-packages"
            site.mkdir(parents=True)
            mounts.append((self.site_packages, f"{self.c_env}/lib/{self.python_xy}/site-packages"))
        package = host(self.c_package)
        (package / "bin").mkdir(parents=True)
        for name in self.WRAPPERS:
            wrapper = package / "bin" / name
            wrapper.write_text(self.render_wrapper(name))
            wrapper.chmod(0o555)
        host(self.c_app).mkdir(parents=True)
        host(self.c_static).mkdir(parents=True)
        mounts += [(self.app_dir, self.c_app), (self.static_root, self.c_static)]
        return mounts


def prepare_layout(src: Path) -> Path:
    """The bin directory of the process testbed's layout for checkout `src` (built once, cached)."""
    sys.path.insert(0, str(REPO / "ci" / "testbed"))
    try:
        import bitpoll_testbed
    except ImportError as exc:
        raise TestbedError(f"cannot load the process testbed (ci/testbed/bitpoll_testbed.py): {exc}") from exc
    try:
        build = bitpoll_testbed.prepare(str(src))
    except bitpoll_testbed.TestbedError as exc:
        raise TestbedError(f"the process testbed could not prepare {src}: {exc}") from exc
    return Path(build.bin_dir)
