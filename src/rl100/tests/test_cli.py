"""The ``rl100`` command line: bad input ends in one line naming the problem, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rl100.cli import main


def _rl100(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rl100.cli", *args], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, **env))


def test_bad_input_is_one_line_not_a_traceback(tmp_path):
    missing = _rl100("eval", str(tmp_path / "nope.onnx"), "--task", "juicing-place")
    assert missing.returncode == 2
    assert missing.stderr.startswith("rl100 eval: error: CardError: no model card at "), missing.stderr
    assert "Traceback" not in missing.stderr
    shown = _rl100("eval", str(tmp_path / "nope.onnx"), "--task", "juicing-place", RL100_TRACEBACK="1")
    assert shown.returncode == 1 and "Traceback" in shown.stderr and "CardError" in shown.stderr


def test_from_python_exceptions_go_through(tmp_path):
    with pytest.raises(ValueError, match="no model card"):
        main(["eval", str(tmp_path / "nope.onnx"), "--task", "juicing-place"])
