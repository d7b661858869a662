"""Lint as a test: ruff with the core's settings (ruff.toml) and ament's in ROS packages (ruff-ament.toml)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = shutil.which("ruff")
    assert ruff, "ruff is not installed (scripts/setup.sh installs it)"
    result = subprocess.run([ruff, "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ros_packages_use_ament_settings():
    """Each ament_python package lints with ament's flake8 conventions (line 99, single quotes)."""
    packages = [p.parent for p in (REPO / "src").glob("*/package.xml") if (p.parent / "setup.py").exists()]
    assert packages
    for pkg in packages:
        config = pkg / "ruff.toml"
        assert config.is_file(), f"{pkg.name} has no ruff.toml"
        assert 'extend = "../../ruff-ament.toml"' in config.read_text()
    result = subprocess.run(
        [shutil.which("ruff"), "check", "--no-cache", "--show-settings", str(packages[0] / "setup.py")],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "line_length = 99" in result.stdout.replace("linter.line_length", "line_length")
