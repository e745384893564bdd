"""Checks nix-tests/ without nixpkgs, KVM or a VM (ci/checks.d/25-nix-tests.sh runs it).

1. Discovery, with builtins only (always runs): every scenarios/*.toml has a VM test and every
   VM test a scenario; an override without a scenario, a stray file among the overrides, a bad
   file name and a scenario named differently from its file are refused at evaluation, with
   the file named in the error. Run on the real directories and on made-up ones.
   The harness logs in to a real sshd on 127.0.0.1 with a key of the snakeoil key's kind.
2. The tests themselves (needs nixpkgs' lib, NIXPKGS_LIB): each test is evaluated with
   nix-tests/tests/eval.nix, and its Python test script is run against stand-in machines that
   record every call: the order of the waits, the exact harness command line (target, base
   URL, scenario file, reports, --var from the override), the exit code and the reports copied
   out also when the harness fails; and the shell script of the check around each test is run
   on made-up test outputs: it keeps the reports and fails exactly when the harness did.

Prints one line per check; exits 1 if any failed.
"""

from __future__ import annotations

import ast
import json
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NIX_TESTS = ROOT / "nix-tests"
SCENARIOS = ROOT / "scenarios"

failures: list[str] = []


def check(condition: bool, what: str, detail: str = "") -> None:
    if condition:
        print(f"ok   {what}")
    else:
        print(f"FAIL {what}" + (f": {detail}" if detail else ""))
        failures.append(what)


def nix_eval(expression: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "--expr", expression, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def discover(scenario_dir: Path, override_dir: Path) -> subprocess.CompletedProcess[str]:
    """Names and overrides as discover.nix finds them (paths as strings: no store copies)."""
    expression = f"""
      builtins.mapAttrs (_: t: {{
        override = if t.override == null then null else toString t.override;
        inherit (t) vars;
      }}) (import {NIX_TESTS / 'discover.nix'} {{
        scenarioDir = {scenario_dir};
        overrideDir = {override_dir};
      }})
    """
    return nix_eval(expression)


def check_discovery() -> list[str]:
    result = discover(SCENARIOS, NIX_TESTS / "scenarios")
    check(result.returncode == 0, "discovery evaluates on the repository", result.stderr.strip())
    if result.returncode != 0:
        return []
    found = json.loads(result.stdout)
    scenario_files = sorted(p.stem for p in SCENARIOS.glob("*.toml"))
    check(
        sorted(found) == scenario_files,
        "every scenario file has a VM test and every VM test a scenario file",
        f"tests {sorted(found)} vs files {scenario_files}",
    )
    override_files = sorted(p.stem for p in (NIX_TESTS / "scenarios").glob("*.nix"))
    with_override = sorted(name for name, test in found.items() if test["override"])
    check(
        with_override == override_files,
        "every override in nix-tests/scenarios/ belongs to a test",
        f"{with_override} vs {override_files}",
    )
    for name in sorted(found):
        override = found[name]["override"]
        print(
            f"     vm-{name}: scenarios/{name}.toml"
            + (f" + nix-tests/scenarios/{name}.nix" if override else "")
        )
    return sorted(found)


def scenario_text(name: str) -> str:
    return (
        f'[scenario]\nname = "{name}"\nsummary = "s"\n\n[vars]\nx = "1"\n\n[[step]]\nname = "a"\nhttp = "/"\n'
    )


def check_discovery_errors() -> None:
    cases = [
        # (what, scenario files, override files, expected fragment of the error)
        (
            "an override without a scenario is refused",
            {"a": scenario_text("a")},
            {"b.nix": "_: { }"},
            "nix-tests/scenarios/b.nix: there is no scenarios/b.toml",
        ),
        (
            "a stray file among the overrides is refused",
            {"a": scenario_text("a")},
            {"a.nx": "_: { }"},
            "nix-tests/scenarios/a.nx: not a .nix file",
        ),
        (
            "a scenario named unlike its file is refused",
            {"a": scenario_text("other")},
            {},
            'scenarios/a.toml: [scenario] name is "other", expected "a"',
        ),
        (
            "a scenario file name that cannot name a check is refused",
            {"9a": scenario_text("9a")},
            {},
            "scenarios/9a.toml: a scenario's file name must start with a letter",
        ),
    ]
    for what, scenarios, overrides, expected in cases:
        with tempfile.TemporaryDirectory() as tmp:
            scenario_dir = Path(tmp, "scenarios")
            override_dir = Path(tmp, "overrides")
            scenario_dir.mkdir()
            override_dir.mkdir()
            for name, text in scenarios.items():
                (scenario_dir / f"{name}.toml").write_text(text)
            for name, text in overrides.items():
                (override_dir / name).write_text(text)
            result = discover(scenario_dir, override_dir)
            check(
                result.returncode != 0 and expected in result.stderr,
                what,
                result.stderr.strip() or "it evaluated",
            )
    with tempfile.TemporaryDirectory() as tmp:
        scenario_dir = Path(tmp)
        (scenario_dir / "a.toml").write_text(scenario_text("a"))
        (scenario_dir / "notes.md").write_text("not a scenario")
        result = discover(scenario_dir, Path(tmp, "absent"))
        found = json.loads(result.stdout) if result.returncode == 0 else None
        check(
            found == {"a": {"override": None, "vars": ["x"]}},
            "only .toml files are scenarios, and a missing override directory means no overrides",
            result.stderr.strip() or str(found),
        )


FACTS = ROOT / "facts" / "nixpkgs.toml"


def driver_facts() -> list[dict]:
    with FACTS.open("rb") as handle:
        return tomllib.load(handle).get("driver", [])


def machine_class() -> type:
    """The test driver's machine as facts/nixpkgs.toml lists it, and nothing more: each listed
    method with its parameters (a call the real signature refuses fails here too), and no
    other attribute, so a method the pinned driver lacks fails with the fact to add."""
    methods = {}
    for fact in driver_facts():
        if not fact["name"].startswith("Machine."):
            continue
        name = fact["name"].removeprefix("Machine.")
        source = f"def {name}(self, {', '.join(fact['parameters'])}):\n    return self._record({name!r}, locals())\n"
        namespace: dict = {}
        exec(source, namespace)
        methods[name] = namespace[name]

    class Machine:
        def __init__(self, name: str, calls: list, answers) -> None:
            self.name, self.calls, self.answers = name, calls, answers

        def __getattr__(self, attribute):
            raise AttributeError(
                f"the test script calls {attribute}() on a machine, which {FACTS.relative_to(ROOT)} does not list "
                "among the driver's methods; read it in nixos/lib/test-driver and add it with its source"
            )

        def _record(self, method, arguments):
            arguments = {k: v for k, v in arguments.items() if k != "self"}
            if method == "copy_from_machine":
                self.calls.append((self.name, "copy", arguments["source"], arguments["target_dir"]))
            elif method == "succeed":
                for command in arguments["commands"]:
                    self.calls.append((self.name, "succeed", command))
                return ""
            elif method == "execute":
                self.calls.append((self.name, "execute", arguments["command"]))
                return self.answers(arguments["command"]), "harness output\n"
            elif method == "wait_for_open_port":
                self.calls.append((self.name, method, arguments["port"], arguments["addr"]))
            elif method == "wait_for_unit":
                self.calls.append((self.name, method, arguments["unit"]))
            elif method == "log":
                self.calls.append((self.name, "log", arguments["msg"]))
            return None

    for name, function in methods.items():
        setattr(Machine, name, function)
    return Machine


def run_script(script: str, harness_status: int, reports_exist: bool):
    calls: list = []

    def answers(command: str) -> int:
        if command.startswith("bitpoll-harness "):
            return harness_status
        if command.startswith("test -f "):
            # The script writes harness-status itself; the reports come from the harness.
            return 0 if reports_exist or command.endswith("/harness-status") else 1
        return 0

    machine = machine_class()
    machines = {"server": machine("server", calls, answers), "client": machine("client", calls, answers)}
    functions = {fact["name"] for fact in driver_facts() if "." not in fact["name"]}
    namespace = dict(machines, print=lambda *_: None)
    if "start_all" in functions:
        namespace["start_all"] = lambda: calls.append(("all", "start_all"))
    error = None
    try:
        exec(compile(script, "<testScript>", "exec"), namespace)
    except (AssertionError, AttributeError, TypeError) as exc:
        error = exc
    return calls, error


def check_driver_stand_in() -> None:
    """The machine has only the methods of the facts: a deprecated or unknown one, or a call
    with a parameter the real signature lacks, fails as the driver's type check would."""
    _, error = run_script('client.copy_from_vm("/tmp/x", "")', harness_status=0, reports_exist=True)
    check(
        isinstance(error, AttributeError)
        and "copy_from_vm() on a machine" in str(error)
        and "does not list" in str(error),
        "the driver stand-in refuses a method facts/nixpkgs.toml does not list (copy_from_vm), naming it",
        repr(error),
    )
    _, error = run_script(
        'client.wait_for_unit("a.service", tiemout=5)', harness_status=0, reports_exist=True
    )
    check(
        isinstance(error, TypeError),
        "the driver stand-in refuses a parameter the real method lacks",
        repr(error),
    )


def check_wrapper(attr: str, name: str, check_drv: dict) -> None:
    """The check around the nixosTest: run its shell script on a made-up test output."""
    for status, reports, should_pass in ((0, True, True), (1, True, False), (2, False, False)):
        with tempfile.TemporaryDirectory() as tmp:
            run, out = Path(tmp, "run"), Path(tmp, "out")
            run.mkdir()
            (run / "harness-status").write_text(f"{status}\n")
            if reports:
                (run / "report.json").write_text("{}")
                (run / "junit.xml").write_text("<testsuites/>")
            script = check_drv["script"].replace(check_drv["run"], str(run))
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                env={"out": str(out), "PATH": os.environ["PATH"]},
                capture_output=True,
                text=True,
                timeout=30,
            )
            copied = sorted(p.name for p in out.iterdir()) if out.exists() else []
            expected = ["junit.xml", "report.json"] if reports else []
            passed = result.returncode == 0
            check(
                passed == should_pass
                and copied == expected
                and (should_pass or f"bitpoll-harness run {name} exited with {status}" in result.stderr),
                f"{attr}: the check {'passes' if should_pass else 'fails, naming the exit code,'} when the harness exits with {status}, "
                f"and keeps {'both reports' if reports else 'what there is'}",
                f"exit {result.returncode}, copied {copied}, {result.stderr.strip()}",
            )


def render(lib: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "nix-instantiate",
            "--eval",
            "--strict",
            "--json",
            str(NIX_TESTS / "tests" / "eval.nix"),
            "--arg",
            "libPath",
            lib,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def check_rendered_tests(expected_names: list[str], lib: str) -> None:
    result = render(lib)
    check(result.returncode == 0, "every VM test evaluates with nixpkgs' lib", result.stderr.strip())
    if result.returncode != 0:
        return
    tests = json.loads(result.stdout)
    check(
        sorted(tests) == [f"vm-{n}" for n in expected_names],
        "the tests are named vm-NAME, one per scenario",
        str(sorted(tests)),
    )
    check_scripts(tests, "bitpoll", "http://server:8080", "server", 8080)


def check_validation_tests(lib: str) -> None:
    """lib.mkValidationTest: an administrator's module on the server, under its own host name."""
    module = '{ services.bitpoll = { allowedHosts = [ "polls.example.org" ]; listenAddress = "0.0.0.0"; port = 8000; }; }'
    result = render(lib, "--arg", "module", module)
    check(
        result.returncode == 0,
        "validation tests evaluate with an administrator's module",
        result.stderr.strip(),
    )
    if result.returncode == 0:
        tests = json.loads(result.stdout)
        check_scripts(tests, "bitpoll-validate", "http://polls.example.org:8000", "polls.example.org", 8000)
        for attr, test in sorted(tests.items()):
            check(
                test["clientHostsEnabled"]
                and test["clientHosts"] == {"192.168.1.2": ["polls.example.org"]}
                and test["firewall"] == [8000],
                f"validate {attr}: the client resolves polls.example.org to the server, whose firewall opens port 8000",
                f"{test['clientHosts']}, {test['firewall']}",
            )

    # runNixOSTest makes nixpkgs.* read-only on the nodes; an administrator's module (a
    # hardware-configuration.nix) sets them, so validation tests turn that off.
    module = (
        '{ nixpkgs.hostPlatform = "x86_64-linux"; nixpkgs.config.allowUnfree = true; '
        'nixpkgs.overlays = [ (final: prev: { }) ]; services.bitpoll.allowedHosts = [ "polls.example.org" ]; }'
    )
    result = render(lib, "--arg", "module", module)
    tests = json.loads(result.stdout) if result.returncode == 0 else {}
    check(
        result.returncode == 0
        and all(
            t["nixpkgs"] == {"hostPlatform": "x86_64-linux", "overlays": 1, "pkgsReadOnly": False}
            for t in tests.values()
        ),
        "validate: a module that sets nixpkgs.hostPlatform, nixpkgs.config and nixpkgs.overlays evaluates (node.pkgsReadOnly = false)",
        result.stderr.strip()[-1500:] or str([t["nixpkgs"] for t in tests.values()]),
    )
    with tempfile.TemporaryDirectory() as tmp:
        overrides = Path(tmp)
        (overrides / "deployment.nix").write_text('_: { server.nixpkgs.hostPlatform = "x86_64-linux"; }')
        result = render(lib, "--arg", "overrideDir", str(overrides))
        check(
            result.returncode != 0
            and "The option `nixpkgs.hostPlatform' is read-only, but it's set multiple times"
            in result.stderr,
            "the project's own tests keep nixpkgs.* read-only, as runNixOSTest's default does",
            result.stderr.strip()[-1500:] or "it evaluated",
        )

    result = render(lib, "--arg", "module", "{ services.bitpoll.enable = true; }")
    check(
        result.returncode != 0
        and "services.bitpoll.baseUrl `http://localhost:8080`: names this machine only" in result.stderr,
        "validate: a configuration reachable only from localhost is refused with the option to set",
        result.stderr.strip() or "it evaluated",
    )


def check_override_errors(lib: str) -> None:
    cases = [
        (
            "an override's harnessVars must be declared in the scenario's [vars]",
            '_: { harnessVars.y = "1"; }',
            "nix-tests/scenarios/a.nix: harnessVars.y is not declared in [vars] of scenarios/a.toml",
        ),
        (
            "an override with an unknown attribute is refused",
            "_: { sever = { }; }",
            "nix-tests/scenarios/a.nix: unknown attribute `sever`",
        ),
    ]
    for what, text, expected in cases:
        with tempfile.TemporaryDirectory() as tmp:
            scenario_dir = Path(tmp, "scenarios")
            override_dir = Path(tmp, "overrides")
            scenario_dir.mkdir()
            override_dir.mkdir()
            (scenario_dir / "a.toml").write_text(scenario_text("a"))
            (override_dir / "a.nix").write_text(text)
            result = render(
                lib, "--arg", "scenarioDir", str(scenario_dir), "--arg", "overrideDir", str(override_dir)
            )
            check(
                result.returncode != 0 and expected in result.stderr,
                what,
                result.stderr.strip() or "it evaluated",
            )
    with tempfile.TemporaryDirectory() as tmp:
        scenario_dir = Path(tmp, "scenarios")
        override_dir = Path(tmp, "overrides")
        scenario_dir.mkdir()
        override_dir.mkdir()
        (scenario_dir / "a.toml").write_text(scenario_text("a"))
        # A value with a quote, a double quote and a space, from the server's configuration.
        (override_dir / "a.nix").write_text(
            r'_: { harnessVars = { nodes }: { x = "it\'s \"${nodes.server.system.build.toplevel}\" x"; }; }'
        )
        result = render(
            lib, "--arg", "scenarioDir", str(scenario_dir), "--arg", "overrideDir", str(override_dir)
        )
        script = json.loads(result.stdout)["vm-a"]["testScript"] if result.returncode == 0 else ""
        command = [line for line in script.splitlines() if "bitpoll-harness run" in line]
        argv = (
            shlex.split(ast.literal_eval(command[0].split("client.execute(", 1)[1].rsplit(", timeout", 1)[0]))
            if command
            else []
        )
        check(
            "--var" in argv
            and argv[argv.index("--var") + 1]
            == 'x=it\'s "/nix/store/00000000000000000000000000000000-nixos-system-server-test" x',
            "harnessVars reach the harness as one --var NAME=VALUE argument, quoted for the shell and for Python",
            result.stderr.strip() or str(argv),
        )


def check_flake(lib: str, names: list[str]) -> None:
    """The flake's outputs, evaluated with nix-tests/tests/fake-nixpkgs.nix in place of nixpkgs."""
    with tempfile.TemporaryDirectory() as tmp:
        fake = Path(tmp, "flake.nix")
        fake.write_text(
            "{ outputs = _: import %s { libPath = %s; }; }\n"
            % (NIX_TESTS / "tests" / "fake-nixpkgs.nix", lib)
        )
        nix = ["nix", "--extra-experimental-features", "nix-command flakes"]
        common = ["--impure", "--override-input", "nixpkgs", f"path:{tmp}", "--no-write-lock-file"]

        def flake_eval(attr: str, apply: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*nix, "eval", "--json", *common, f"{ROOT}#{attr}", *(["--apply", apply] if apply else [])],
                capture_output=True,
                text=True,
                timeout=120,
            )

        shown = subprocess.run(
            [*nix, "flake", "show", "--json", *common, str(ROOT)], capture_output=True, text=True, timeout=120
        )
        check(shown.returncode == 0, "flake: the outputs evaluate", shown.stderr.strip()[-2000:])
        if shown.returncode != 0:
            return
        outputs = json.loads(shown.stdout)
        base = ["bitpoll", "bitpoll-harness", "bitpoll_0_10", "hardening", "harness-tests", "nix-lint"]
        vm = [f"vm-{n}" for n in names]
        check(
            sorted(outputs["checks"]["x86_64-linux"]) == sorted(base + vm),
            "flake: checks.x86_64-linux are the packages, lint, hardening, unit tests and one vm-NAME per scenario",
            str(sorted(outputs["checks"]["x86_64-linux"])),
        )
        check(
            sorted(outputs["checks"]["aarch64-linux"]) == sorted(base),
            "flake: checks.aarch64-linux have everything but the VM tests",
            str(sorted(outputs["checks"]["aarch64-linux"])),
        )
        for system in ("x86_64-linux", "aarch64-linux"):
            check(
                "bitpoll-harness" in outputs["packages"][system]
                and sorted(outputs["apps"][system]) == ["bitpoll-harness", "default"],
                f"flake: packages.{system}.bitpoll-harness and apps.{system}.{{bitpoll-harness,default}}",
            )
        result = flake_eval("apps.x86_64-linux.default.program")
        check(
            result.returncode == 0
            and json.loads(result.stdout).endswith("-bitpoll-harness-0.1.0/bin/bitpoll-harness"),
            "flake: the default app runs bin/bitpoll-harness of the package",
            result.stdout + result.stderr,
        )

        # lib.fileset needs builtins.readFileType (Nix 2.14); older Nix evaluates all but `src`.
        has_file_type = nix_eval("builtins ? readFileType").stdout.strip() == "true"
        result = flake_eval(
            "packages.x86_64-linux.bitpoll-harness",
            "d: { inherit (d) pname version doCheck; lock = toString d.cargoLock.lockFile;"
            + (" src = builtins.attrNames (builtins.readDir d.src);" if has_file_type else "")
            + " native = map (x: x.name) d.nativeBuildInputs; inputs = map (x: x.name) d.buildInputs; main = d.meta.mainProgram;"
            + " post = d.postInstall; }",
        )
        harness = json.loads(result.stdout) if result.returncode == 0 else {}
        version = next(
            line.split('"')[1]
            for line in (ROOT / "harness" / "Cargo.toml").read_text().splitlines()
            if line.startswith("version")
        )
        check(
            harness.get("pname") == "bitpoll-harness"
            and harness.get("version") == version
            and harness.get("lock", "").endswith("/Cargo.lock")
            and harness.get("native") == ["pkg-config"]
            and harness.get("inputs") == ["openssl", "zlib"]
            and harness.get("doCheck") is False
            and harness.get("main") == "bitpoll-harness"
            and '"$out/share/bitpoll-harness/scenarios" scenarios/*.toml' in harness.get("post", ""),
            f"flake: bitpoll-harness {version} from Cargo.lock, with pkg-config, OpenSSL and zlib for libssh2-sys, "
            "installing the scenarios where the binary finds them",
            result.stderr.strip() or str(harness),
        )
        if has_file_type:
            check(
                harness.get("src") == ["Cargo.lock", "Cargo.toml", "harness", "scenarios"],
                "flake: bitpoll-harness is built from Cargo.toml, Cargo.lock, harness/ and scenarios/ only",
                str(harness.get("src")),
            )
        else:
            print(
                "SKIPPED the harness's source set: lib.fileset needs builtins.readFileType, which this Nix (< 2.14) lacks"
            )
        result = flake_eval("devShells.x86_64-linux.default", "d: map (p: p.name) d.packages")
        shell = json.loads(result.stdout) if result.returncode == 0 else []
        check(
            result.returncode == 0
            and {"cargo", "cargo-nextest", "clippy", "nixfmt", "deadnix", "bitpoll-dev"} <= set(shell),
            "flake: the development shell evaluates with the facts' stand-ins (Rust tools, Nix linters, bitpoll-dev)",
            result.stderr.strip()[-1500:] or str(shell),
        )
        result = flake_eval(
            "checks.x86_64-linux.harness-tests", "d: { inherit (d) name doCheck cargoTestFlags; }"
        )
        check(
            result.returncode == 0
            and json.loads(result.stdout)
            == {
                "name": f"bitpoll-harness-unit-tests-{version}",
                "doCheck": True,
                "cargoTestFlags": ["--lib"],
            },
            "flake: checks.harness-tests runs the library's unit tests",
            result.stdout + result.stderr,
        )
        result = flake_eval(
            "checks.x86_64-linux.vm-upgrade",
            "d: { inherit (d) name; run = d.passthru.run.name; test = d.passthru.run.test.name; }",
        )
        check(
            (
                result.returncode == 0
                and json.loads(result.stdout)
                == {
                    "name": "vm-test-bitpoll-upgrade",
                    "run": "vm-test-run-bitpoll-upgrade",
                    "test": "bitpoll-upgrade",
                }
                if "upgrade" in names
                else True
            ),
            "flake: checks.vm-NAME is the verdict on its nixosTest, passthru.run",
            result.stdout + result.stderr,
        )
        result = flake_eval(
            "lib.mkValidationTest",
            'f: builtins.mapAttrs (_: t: t.name) (f { system = "x86_64-linux"; scenarios = [ "%s" ]; '
            'module = { services.bitpoll.allowedHosts = [ "polls.example.org" ]; }; })' % names[0],
        )
        check(
            result.returncode == 0
            and json.loads(result.stdout) == {f"vm-{names[0]}": f"vm-test-bitpoll-validate-{names[0]}"},
            "flake: lib.mkValidationTest builds the named scenarios' tests with the given module",
            result.stdout + result.stderr,
        )
        result = flake_eval(
            "lib.mkValidationTest",
            'f: builtins.attrNames (f { system = "x86_64-linux"; module = { }; scenarios = [ "nope" ]; })',
        )
        check(
            result.returncode != 0
            and "no scenario `nope`; the scenarios are: " + ", ".join(names) in result.stderr,
            "flake: lib.mkValidationTest names the scenarios when given an unknown one",
            result.stderr.strip(),
        )
        result = flake_eval("lib.mkValidationTest", "f: builtins.attrNames (f { module = { }; })")
        check(
            result.returncode != 0 and "mkValidationTest: pass `system`" in result.stderr,
            "flake: lib.mkValidationTest asks for a system",
            result.stderr.strip(),
        )


def check_scripts(tests: dict, prefix: str, base_url: str, host: str, port: int) -> None:
    for attr, test in sorted(tests.items()):
        name = attr.removeprefix("vm-")
        script = test["testScript"]
        bitpoll = test["bitpoll"]
        try:
            compile(script, f"<{attr}>", "exec")
        except SyntaxError as exc:
            check(False, f"{attr}: the test script is valid Python", str(exc))
            continue

        calls, error = run_script(script, harness_status=0, reports_exist=True)
        order = [c[:3] for c in calls if c[1] in ("start_all", "wait_for_unit")]
        check(
            order[:3]
            == [
                ("all", "start_all"),
                ("server", "wait_for_unit", "bitpoll.socket"),
                ("client", "wait_for_unit", "multi-user.target"),
            ],
            f"{attr}: boots both, waits for bitpoll.socket and the client's multi-user.target",
            str(order),
        )
        ports = [c[1:] for c in calls if c[1] == "wait_for_open_port"]
        check(
            ("server", "wait_for_open_port", bitpoll["port"], "127.0.0.1") in calls
            and ("server", "wait_for_open_port", 22, "localhost") in calls
            and ("client", "wait_for_open_port", port, host) in calls,
            f"{attr}: waits for Bitpoll's port and sshd on the server, and for the port from the client",
            str(ports),
        )
        harness = [
            c[2]
            for c in calls
            if c[0] == "client" and c[1] == "execute" and c[2].startswith("bitpoll-harness ")
        ]
        check(len(harness) == 1, f"{attr}: runs the harness once on the client", str(harness))
        if len(harness) != 1:
            continue
        argv = shlex.split(harness[0])
        check(
            argv[-1] == "2>&1" or harness[0].endswith(" 2>&1"), f"{attr}: the harness's errors reach the log"
        )
        argv = [a for a in argv if a != "2>&1"]
        options = dict(zip(argv[3::2], argv[4::2]))
        check(
            argv[:3] == ["bitpoll-harness", "run", name]
            and options.get("--scenarios") == "/etc/bitpoll-harness/scenarios"
            and test["clientEtc"]
            .get(f"bitpoll-harness/scenarios/{name}.toml", "")
            .endswith(f"scenarios/{name}.toml"),
            f"{attr}: runs scenarios/{name}.toml, installed on the client, by name with --scenarios",
            str(argv[:5]),
        )
        check(
            options.get("--target") == "ssh://root@server"
            and options.get("--base-url") == bitpoll["baseUrl"] == base_url
            and options.get("--known-hosts") == "accept-new"
            and options.get("--identity") == "/root/.ssh/id_ecdsa"
            and options.get("--report") == "/tmp/bitpoll-harness/report.json"
            and options.get("--junit") == "/tmp/bitpoll-harness/junit.xml",
            f"{attr}: harness targets root@server over SSH with the snakeoil key, base URL {bitpoll['baseUrl']}",
            str(options),
        )
        installs = [c[2] for c in calls if c[1] == "succeed" and "install" in c[2]]
        check(
            any(
                cmd.startswith("install -D -m 0600 ") and cmd.endswith(" /root/.ssh/id_ecdsa")
                for cmd in installs
            )
            and test["serverUser"] == ["ecdsa-sha2-nistp256 AAAAstub snakeoil"]
            and test["serverSsh"] == {"enable": True, "PermitRootLogin": "prohibit-password"},
            f"{attr}: the client's key is private and the server accepts it for root, keys only",
            str(installs),
        )
        check(test["name"] == f"{prefix}-{name}", f"{attr}: the test is named {prefix}-{name}", test["name"])
        check(
            port in test["firewall"],
            f"{attr}: the server's firewall opens port {port}",
            str(test["firewall"]),
        )
        status_files = [c[2] for c in calls if c[1] == "succeed" and "harness-status" in c[2]]
        copies = [c[2:] for c in calls if c[1] == "copy"]
        check(
            status_files == ["echo 0 > /tmp/bitpoll-harness/harness-status"]
            and copies
            == [(f"/tmp/bitpoll-harness/{f}", "") for f in ("harness-status", "report.json", "junit.xml")]
            and error is None,
            f"{attr}: the run records the harness's exit code and copies it with report.json and junit.xml to $out",
            f"{status_files}, {copies}, {error}",
        )
        calls, error = run_script(script, harness_status=1, reports_exist=True)
        copies = [c[2:] for c in calls if c[1] == "copy"]
        check(
            len(copies) == 3
            and error is None
            and [c[2] for c in calls if c[1] == "succeed" and "harness-status" in c[2]][-1].startswith(
                "echo 1 "
            ),
            f"{attr}: a failing harness still leaves all three files",
            f"{copies}, {error}",
        )
        check(
            "copy_from_vm" not in script,
            f"{attr}: the script names no deprecated driver method (copy_from_vm)",
        )
        calls, error = run_script(script, harness_status=2, reports_exist=False)
        copies = [c[2:] for c in calls if c[1] == "copy"]
        logged = [c[2] for c in calls if c[1] == "log"]
        check(
            copies == [("/tmp/bitpoll-harness/harness-status", "")] and len(logged) == 2,
            f"{attr}: a run that could not start leaves its exit code and says which reports are missing",
            f"{copies}, {logged}",
        )
        check_wrapper(attr, name, test["check"])

        scenario = (SCENARIOS / f"{name}.toml").read_text() if (SCENARIOS / f"{name}.toml").exists() else ""
        if "bitpoll-backup.service" in scenario:
            check(
                bitpoll["backup"],
                f"{attr}: the scenario uses bitpoll-backup.service, so the server has backups on",
            )
        if name == "upgrade":
            check(
                bitpoll["package"] == "bitpoll-0.10.0",
                f"{attr}: the server boots the previous release",
                bitpoll["package"],
            )
            check(
                "switch_command=/nix/store/00000000000000000000000000000000-nixos-system-server-test/specialisation/upgraded/bin/switch-to-configuration test"
                in argv,
                f"{attr}: the harness switches to the specialisation by the system's store path",
                str(argv),
            )
            check(
                test["specialisation"] == {"upgraded": "bitpoll-0.11.0"},
                f"{attr}: the specialisation `upgraded` runs the current release",
                str(test["specialisation"]),
            )
        if name == "postgresql":
            check(
                bitpoll["database"] == "postgresql",
                f"{attr}: the server uses PostgreSQL",
                bitpoll["database"],
            )
        vars_given = [a for a in argv if "=" in a and argv[argv.index(a) - 1] == "--var"]
        if vars_given and prefix == "bitpoll":
            print(f"     {attr}: --var " + " --var ".join(vars_given))


def check_key_format() -> None:
    """The VM tests log in with nixpkgs' snakeoil key: ECDSA P-256 in the PEM format
    (`BEGIN EC PRIVATE KEY`), not the OpenSSH format the harness's own tests use. A key of that
    very kind, made here, must get the harness into a real sshd on 127.0.0.1."""
    sshd = Path("/usr/sbin/sshd")
    if not sshd.exists() or not shutil.which("ssh-keygen") or not shutil.which("cargo"):
        print(
            "SKIPPED the snakeoil key format against a real sshd: needs /usr/sbin/sshd, ssh-keygen and cargo"
        )
        return
    build = subprocess.run(
        [
            "cargo",
            "build",
            "--locked",
            "--quiet",
            "--package",
            "bitpoll-harness",
            "--bin",
            "bitpoll-harness",
            "--message-format",
            "json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    binaries = [
        json.loads(line)["executable"]
        for line in build.stdout.splitlines()
        if '"executable":"' in line and json.loads(line).get("target", {}).get("name") == "bitpoll-harness"
    ]
    check(build.returncode == 0 and binaries, "the harness builds", build.stderr.strip()[-2000:])
    if build.returncode != 0 or not binaries:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        for name, extra in (
            ("host_key", ["-t", "ed25519"]),
            ("user_key", ["-t", "ecdsa", "-b", "256", "-m", "PEM"]),
        ):
            subprocess.run(["ssh-keygen", "-q", *extra, "-N", "", "-f", str(path / name)], check=True)
        key_text = (path / "user_key").read_text()
        shutil.copy(path / "user_key.pub", path / "authorized_keys")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        (path / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {path / 'host_key'}\nAuthorizedKeysFile {path / 'authorized_keys'}\n"
            f"PidFile {path / 'sshd.pid'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        )
        if os.geteuid() == 0:
            # sshd running as root needs its privilege separation directory.
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        (path / "probe.toml").write_text(
            '# probe: the key logs in.\n[scenario]\nname = "probe"\nsummary = "key login"\n\n'
            '[[step]]\nname = "who"\nrun = ["id", "-u"]\nexpect.stdout = "%d"\n' % os.geteuid()
        )
        server = subprocess.Popen(
            [str(sshd), "-D", "-e", "-f", str(path / "sshd_config"), "-E", str(path / "sshd.log")],
            stdin=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with socket.socket() as connection:
                    if connection.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            user = pwd.getpwuid(os.geteuid()).pw_name
            result = subprocess.run(
                [
                    binaries[0],
                    "run",
                    str(path / "probe.toml"),
                    "--target",
                    f"ssh://{user}@127.0.0.1:{port}",
                    "--identity",
                    str(path / "user_key"),
                    "--known-hosts",
                    "accept-new",
                    "--known-hosts-file",
                    str(path / "known_hosts"),
                    "--base-url",
                    "http://127.0.0.1:1",
                    "--report",
                    str(path / "report.json"),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            server.terminate()
            server.wait(timeout=10)
        log = (path / "sshd.log").read_text() if (path / "sshd.log").exists() else ""
        check(
            key_text.startswith("-----BEGIN EC PRIVATE KEY-----")
            and result.returncode == 0
            and "Accepted publickey" in log
            and "ECDSA" in log,
            "the harness logs in over SSH with an ECDSA key in the PEM format, as nixpkgs' snakeoil key is",
            f"exit {result.returncode}: {result.stdout}{result.stderr}{log[-1500:]}",
        )


def main() -> int:
    names = check_discovery()
    check_driver_stand_in()
    check_discovery_errors()
    check_key_format()
    lib = os.environ.get("NIXPKGS_LIB")
    # Both a nixpkgs(-lib) checkout and its lib directory, as the module's tests accept.
    if lib and Path(lib, "lib", "default.nix").is_file():
        lib = str(Path(lib, "lib"))
    if not lib:
        print(
            "SKIPPED rendering and running the VM test scripts: NIXPKGS_LIB is not set (a path to nixpkgs' lib)"
        )
    elif names:
        check_rendered_tests(names, lib)
        check_validation_tests(lib)
        check_override_errors(lib)
        check_flake(lib, names)
    print(f"{len(failures)} failed" if failures else "all nix-tests checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
