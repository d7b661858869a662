"""The learning core (src/rl100) imports, with every submodule, where rclpy cannot be imported."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

CORE = pathlib.Path(__file__).resolve().parents[1] / "src" / "rl100"

PROBE = r"""
import importlib, pkgutil, sys
sys.modules["rclpy"] = None  # any `import rclpy` now raises ImportError
import rl100
failed = []
names = ["rl100"] + [m.name for m in pkgutil.walk_packages(rl100.__path__, "rl100.")]
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {exc.__class__.__name__}: {exc}")
assert "rclpy" not in [m for m in sys.modules if sys.modules[m] is not None], "rclpy got imported"
print(len(names), "modules")
print("\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_core_module_imports_without_rclpy():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(result.stdout.split()[0]) >= 3


def test_no_ros_import_in_core_sources():
    pattern = re.compile(r"^\s*(import|from)\s+(rclpy|rosidl_runtime_py|rl100_msgs|rl100_ros)\b", re.M)
    offenders = [str(p) for p in CORE.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
