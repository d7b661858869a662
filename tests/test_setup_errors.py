"""scripts/setup.sh names exactly what is missing: the wrong Python, no apt-get, no root.

Each case stops before any venv is created, so these run in a second or two.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

SETUP = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "setup.sh"


def _run(env_updates: dict, tmp_path, prefix: list[str] | None = None):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "RL100_VENV": str(tmp_path / "venv")}
    env.update(env_updates)
    return subprocess.run([*(prefix or []), shutil.which("bash"), str(SETUP)], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)


def test_wrong_python_is_named(tmp_path):
    fake = tmp_path / "python3.10"
    fake.write_text("#!/bin/sh\necho 3.10\n")
    fake.chmod(0o755)
    result = _run({"RL100_PYTHON": str(fake)}, tmp_path)
    assert result.returncode == 1
    assert "Python 3.11 is required" in result.stderr and "is 3.10" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_missing_interpreter_is_named(tmp_path):
    result = _run({"RL100_PYTHON": "python3.99"}, tmp_path)
    assert result.returncode == 1
    assert "no 'python3.99' on PATH" in result.stderr


def test_missing_library_without_apt_is_named(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dpkg-query", "grep", "uname", "id", "dirname", "cat"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    python = os.path.realpath(sys._base_executable)  # the real interpreter, not a venv or pyenv shim
    result = _run({"PATH": str(bin_dir), "RL100_PYTHON": python, "RL100_APT_PACKAGES": "rl100-no-such-lib"},
                  tmp_path)
    assert result.returncode == 1
    assert "missing system libraries rl100-no-such-lib and no apt-get" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop to another user")
def test_missing_library_without_root_is_named(tmp_path):
    tmp_path.chmod(0o777)
    result = _run({"RL100_APT_PACKAGES": "rl100-no-such-lib", "RL100_PYTHON": "/usr/bin/python3"}, tmp_path,
                  prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    if "Python 3.11 is required" in result.stderr:
        pytest.skip("this machine's system python is not 3.11")
    assert result.returncode == 1
    assert "run as root (or with sudo): apt-get install -y rl100-no-such-lib" in result.stderr
