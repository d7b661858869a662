"""Robustness through the ROS stack, small: nominal and one family, one short episode each."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("rclpy")


def test_family_rows_run_through_the_graph(ros_env, tmp_path, points_model):
    out = tmp_path / "robust"
    cmd = [sys.executable, "-m", "rl100_bringup.robustness", "--model", str(points_model), "--families",
           "push_arm", "--episodes", "1", "--time-limit", "1.0", "--seed", "40", "--out", str(out)]
    proc = subprocess.run(cmd, env=ros_env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((out / "results.json").read_text())
    rows = [result["nominal"], *result["families"]]
    assert [r.get("family", "nominal") for r in rows] == ["nominal", "push_arm"]
    assert all(r["episodes"] == 1 and r["error"] == "" and r["seeds"] == [41] for r in rows)
    assert all(r["mean_length"] > 0 for r in rows)  # the policy drove in both
    log = (out / "logs" / "push_arm_moderate.log").read_text()
    assert "disturbance:=push_arm:moderate" in " ".join(result["families"][0]["command"])
    assert 'disturbance: [{"family": "push_arm", "severity": "moderate"' in log  # the sim attached it
    assert (out / "robustness.png").stat().st_size > 1000 and "| push_arm | moderate |" in (
        out / "robustness.md").read_text()


def test_unknown_family_is_named(ros_env, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rl100_bringup.robustness", "--families", "gravity_flip",
                           "--out", str(tmp_path)], env=ros_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "gravity_flip" in proc.stderr
