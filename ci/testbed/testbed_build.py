"""The process testbed's build: Bitpoll's venv and the app laid out as the Nix package lays it
out, cached (bitpoll_testbed.py is the entry point)."""

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import source_version as source_release  # noqa: E402

FILES = os.path.join(REPO, "package", "files")
CONSTRAINTS = os.path.join(REPO, "package", "nixpkgs-python-constraints.txt")
WRAPPERS = ("bitpoll-manage", "bitpoll-server", "bitpoll-ops")
# What the package adds to Bitpoll's own requirements: the app server, static file serving, the
# PostgreSQL driver (a wheel here; nixpkgs builds psycopg2 against libpq) and the Prometheus
# client of the optional metrics (bitpoll_metrics.py).
EXTRA_REQUIREMENTS = ("gunicorn", "whitenoise", "psycopg2-binary", "prometheus-client")
# Bitpoll's requirements.in entries the testbed installs without dependencies: libsasscompiler
# pins libsass exactly to 0.23.0, which the Nix file relaxes (pythonRelaxDeps).
NO_DEPS = ("libsasscompiler",)
NO_DEPS_REQUIREMENTS = ("libsass",)
BUILD_FERNET_KEY = "dGhyb3dhd2F5LWJ1aWxkLWtleS1ub3QtYSBzZWNyZXQ="  # 32 bytes, public, build only


class TestbedError(Exception):
    pass


def log(message):
    print(f"testbed: {message}", file=sys.stderr, flush=True)


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "bitpoll-nix", "testbed")
    os.makedirs(path, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(name):
    """Serialise builds of the same cache entry across processes (parallel test runs)."""
    with open(os.path.join(cache_dir(), f".{name}.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def run(command, **kwargs):
    kwargs.setdefault("check", True)
    try:
        return subprocess.run(command, **kwargs)
    except subprocess.CalledProcessError as error:
        output = error.stdout or ""
        if error.stderr:
            output += error.stderr
        tail = "\n".join(str(output).strip().splitlines()[-20:])
        raise TestbedError(f"{' '.join(map(str, command))} failed with status {error.returncode}\n{tail}")


# Interpreter


def python_version_of(python):
    out = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
    )
    return out.stdout.strip() if out.returncode == 0 else None


def find_python(src):
    """The interpreter for a checkout: $BITPOLL_PYTHON, else the minor version its Dockerfile uses
    (0.10 wants 3.11), else the first Python >= 3.12 (what 0.11 needs)."""
    if os.environ.get("BITPOLL_PYTHON") and not is_previous_release(src):
        return os.environ["BITPOLL_PYTHON"]
    wanted = None
    with contextlib.suppress(OSError):
        with open(os.path.join(src, "Dockerfile")) as handle:
            match = re.search(r"FROM python:(\d+\.\d+)", handle.read())
            wanted = match.group(1) if match else None
    home = os.path.expanduser("~")
    candidates = []
    if wanted:
        candidates += [f"python{wanted}", *sorted(glob.glob(f"{home}/.pyenv/versions/{wanted}*/bin/python3"))]
    candidates += [
        "python3.13",
        "python3.12",
        *sorted(glob.glob(f"{home}/.pyenv/versions/3.1[2-9]*/bin/python3")),
    ]
    for candidate in candidates:
        path = shutil.which(candidate) or (candidate if os.path.isfile(candidate) else None)
        version = path and python_version_of(path)
        if not version:
            continue
        if wanted and version == wanted:
            return path
        if tuple(map(int, version.split("."))) >= (3, 12):
            return path
    raise TestbedError("no suitable Python found; set BITPOLL_PYTHON to a Python >= 3.12")


def is_previous_release(src):
    with contextlib.suppress(OSError):
        with open(os.path.join(src, "requirements.txt")) as handle:
            return re.search(r"(?im)^django==[0-5]\.", handle.read()) is not None
    return False


def source_version(src, explicit=None):
    """The release a checkout or tarball tree is, told by its content (source_version.py); an
    unknown tree is 0+unknown, with what was compared in the log."""
    if explicit:
        return explicit
    try:
        return source_release.release_of(src)
    except source_release.UnknownTree as unknown:
        log(f"version {source_release.UNKNOWN}: {unknown}")
        return source_release.UNKNOWN


# Build: venv and app


def mark_used(entry):
    os.utime(os.path.join(entry, ".complete"))


def prune_cache(keep=6, min_age=3600):
    """Delete cache entries beyond the `keep` most recently used of each kind, when idle an hour."""
    for kind in ("venv-", "app-"):
        entries = []
        for name in os.listdir(cache_dir()):
            complete = os.path.join(cache_dir(), name, ".complete")
            if name.startswith(kind) and os.path.exists(complete):
                entries.append((os.stat(complete).st_mtime, name))
        for used, name in sorted(entries, reverse=True)[keep:]:
            if time.time() - used > min_age:
                with locked(name):
                    shutil.rmtree(os.path.join(cache_dir(), name), ignore_errors=True)


def digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def tree_digest(root, exclude=(".git",)):
    h = hashlib.sha256()
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in exclude and d != "__pycache__")
        for name in sorted(files):
            path = os.path.join(directory, name)
            h.update(os.path.relpath(path, root).encode() + b"\0")
            if not os.path.islink(path):
                h.update(read(path))
    return h.hexdigest()[:16]


def app_modules():
    """The package's own modules beside manage.py (the ops tool, the health endpoint), as
    package/default.nix installs every package/files/bitpoll_*.py."""
    return sorted(name for name in os.listdir(FILES) if name.startswith("bitpoll_") and name.endswith(".py"))


def venv_plan(src):
    """(pip install argument lists, files that key the venv) for this checkout."""
    if is_previous_release(src) or not os.path.exists(CONSTRAINTS):
        # The previous release (and any checkout while the constraints are absent) runs on its
        # own pinned requirements, as its upstream does.
        requirements = os.path.join(src, "requirements.txt")
        return [["-r", requirements, *EXTRA_REQUIREMENTS]], [read(requirements)]
    requirements_in = os.path.join(src, "requirements.in")
    names = []
    for line in read(requirements_in).decode().splitlines():
        line = line.split("#")[0].strip()
        if line and re.split(r"[<>=!~\[; ]", line)[0].lower() not in NO_DEPS:
            names.append(line)
    pinned = dict(re.findall(r"(?m)^([A-Za-z0-9_.-]+)==(\S+)", read(CONSTRAINTS).decode()))
    no_deps = [f"{name}=={pinned[name]}" if name in pinned else name for name in NO_DEPS]
    return (
        [["-c", CONSTRAINTS, *names, *NO_DEPS_REQUIREMENTS, *EXTRA_REQUIREMENTS], ["--no-deps", *no_deps]],
        [read(requirements_in), read(CONSTRAINTS)],
    )


def build_venv(src, python):
    plans, inputs = venv_plan(src)
    key = digest(os.path.realpath(python), python_version_of(python), *inputs, json.dumps(plans))
    venv = os.path.join(cache_dir(), f"venv-{key}")
    with locked(f"venv-{key}"):
        if os.path.exists(os.path.join(venv, ".complete")):
            mark_used(venv)
            return venv
        log(f"building venv {venv} with {python}")
        shutil.rmtree(venv, ignore_errors=True)
        run([python, "-m", "venv", venv])
        env = dict(os.environ, URLLIB3_NO_OVERRIDE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        for args in plans:
            run(
                [os.path.join(venv, "bin", "pip"), "install", "--quiet", *args],
                env=env,
                capture_output=True,
                text=True,
            )
        with open(os.path.join(venv, ".complete"), "w") as handle:
            handle.write("\n".join(" ".join(args) for args in plans) + "\n")
    return venv


class Build:
    """A prepared Bitpoll: what the Nix package's $out holds, from a checkout."""

    def __init__(self, root, python, version):
        self.root = root
        self.python = python
        self.version = version
        self.app_dir = os.path.join(root, "app")
        self.static_root = os.path.join(root, "static")
        self.bin_dir = os.path.join(root, "bin")

    def tool(self, name):
        return os.path.join(self.bin_dir, name)


def render(template, values):
    """Substitute as nixpkgs' replaceVars does: every value must be used, nothing may be left."""
    text = read(template).decode()
    for key, value in values.items():
        if f"@{key}@" not in text:
            raise TestbedError(f"{template}: placeholder @{key}@ not found (replaceVars would fail)")
        text = text.replace(f"@{key}@", value)
    left = re.findall(r"@[a-zA-Z_][0-9A-Za-z_'-]*@", text)
    if left:
        raise TestbedError(f"{template}: unknown placeholders {left}")
    return text


def stand_in_font(app_dir):
    font = os.path.join(app_dir, "bitpoll", "base", "static", "fonts", "NotoColorEmoji.ttf")
    if os.path.exists(font):
        return
    # The checkout lacks the font (see BITPOLL-NOTES); the package takes Debian's/nixpkgs' file.
    debian = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
    if os.path.exists(debian):
        shutil.copyfile(debian, font)
    else:
        with open(font, "wb") as handle:
            handle.write(b"stand-in for NotoColorEmoji.ttf, not a font\n")


def prepare(src, version=None, python=None):
    """Build (or reuse) the venv and the app for checkout `src`; return a Build.

    The layout stands for the package in the Nix store, which everyone can read, so it is built
    under umask 022 whatever the caller's umask (a test that ran the ops tool in-process has
    its 077)."""
    umask = os.umask(0o022)
    try:
        return _prepare(src, version, python)
    finally:
        os.umask(umask)


def _prepare(src, version, python):
    src = os.path.abspath(src)
    if not os.path.exists(os.path.join(src, "manage.py")):
        raise TestbedError(f"{src} is not a Bitpoll checkout (no manage.py)")
    python = python or find_python(src)
    version = source_version(src, version)
    venv = build_venv(src, python)
    venv_python = os.path.join(venv, "bin", "python")
    files = [
        os.path.join(FILES, name)
        for name in ("settings_local.py", *app_modules(), *(f"{w}.in" for w in WRAPPERS))
    ]
    key = digest(tree_digest(src), venv, version, *(read(f) for f in files))
    root = os.path.join(cache_dir(), f"app-{key}")
    build = Build(root, venv_python, version)
    with locked(f"app-{key}"):
        if os.path.exists(os.path.join(root, ".complete")):
            mark_used(root)
            return build
        log(f"building app {root} from {src}")
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(src, build.app_dir, ignore=shutil.ignore_patterns(".git", "__pycache__"))
        shutil.copyfile(
            os.path.join(FILES, "settings_local.py"),
            os.path.join(build.app_dir, "bitpoll", "settings_local.py"),
        )
        for module in app_modules():
            shutil.copyfile(os.path.join(FILES, module), os.path.join(build.app_dir, module))
        stand_in_font(build.app_dir)
        os.makedirs(build.bin_dir)
        values = {
            "python": venv_python,
            "appDir": build.app_dir,
            "staticRoot": build.static_root,
            "version": version,
        }
        for wrapper in WRAPPERS:
            path = build.tool(wrapper)
            with open(path, "w") as handle:
                handle.write(render(os.path.join(FILES, f"{wrapper}.in"), values))
            os.chmod(path, 0o755)
        build_time_steps(build)
        with open(os.path.join(root, ".complete"), "w") as handle:
            handle.write(f"{src}\n")
    prune_cache()
    return build


def build_time_steps(build):
    """compilemessages and collectstatic, as the derivation runs them: a throwaway key, no state."""
    with tempfile.TemporaryDirectory(prefix="bitpoll-build-") as scratch:
        settings = os.path.join(scratch, "settings.json")
        with open(settings, "w") as handle:
            json.dump(
                {
                    "ALLOWED_HOSTS": ["localhost"],
                    "BASE_URL": "http://localhost",
                    "STATIC_ROOT": build.static_root,
                },
                handle,
            )
        credentials = os.path.join(scratch, "credentials")
        os.mkdir(credentials)
        for name, value in (
            ("secret_key", "build-time-only-not-secret"),
            ("encryption_key", BUILD_FERNET_KEY),
        ):
            with open(os.path.join(credentials, name), "w") as handle:
                handle.write(value)
        env = dict(
            os.environ,
            BITPOLL_SETTINGS_FILE=settings,
            CREDENTIALS_DIRECTORY=credentials,
            BITPOLL_STATE_DIR=os.path.join(scratch, "state"),
        )
        manage = build.tool("bitpoll-manage")
        run([manage, "compilemessages"], env=env, cwd=build.app_dir, capture_output=True, text=True)
        run(
            [manage, "collectstatic", "--noinput"], env=env, cwd=build.app_dir, capture_output=True, text=True
        )
    if not os.path.exists(os.path.join(build.static_root, "staticfiles.json")):
        raise TestbedError("collectstatic wrote no staticfiles.json")
