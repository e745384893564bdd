"""The wrapper templates (package/files/*.in), which Nix's replaceVars and the testbed both render."""

import os
import re
import shutil
import subprocess

import pytest

from package_paths import FILES

PLACEHOLDERS = {"python", "appDir", "staticRoot", "version"}
TEMPLATES = sorted(name for name in os.listdir(FILES) if name.endswith(".in"))


def test_the_three_wrappers_exist():
    assert TEMPLATES == ["bitpoll-manage.in", "bitpoll-ops.in", "bitpoll-server.in"]


@pytest.mark.parametrize("template", TEMPLATES)
def test_exactly_the_agreed_placeholders(template):
    # nixpkgs' replaceVars substitutes with --replace-fail (each given name must occur) and then
    # fails on anything left that matches its identifier pattern; the testbed checks the same.
    text = open(os.path.join(FILES, template)).read()
    assert set(re.findall(r"@([a-zA-Z_][0-9A-Za-z_'-]*)@", text)) == PLACEHOLDERS
    rendered = text
    for name in PLACEHOLDERS:
        rendered = rendered.replace(f"@{name}@", f"/nix/store/{'0' * 32}-{name}")
    assert not re.search(r"@[a-zA-Z_][0-9A-Za-z_'-]*@", rendered)
    # The process is replaced, so systemd's LISTEN_PID and the journal see the real program.
    assert re.search(r"(?m)^exec '@python@' ", text)


@pytest.mark.parametrize("template", TEMPLATES)
def test_templates_are_valid_bash(template, tmp_path):
    text = open(os.path.join(FILES, template)).read()
    for name in PLACEHOLDERS:
        text = text.replace(f"@{name}@", f"/nix/store/{'0' * 32}-{name}")
    rendered = tmp_path / template[:-3]
    rendered.write_text(text)
    result = subprocess.run(["bash", "-n", str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    if shutil.which("shellcheck"):
        result = subprocess.run(["shellcheck", str(rendered)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout
