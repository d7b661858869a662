"""A short soak of the simulated graph: episodes read as they finish, bags verified and rotated
into the archive, node memory sampled, per-hour report written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("rclpy")


def test_short_soak_reports_rotates_and_verifies(ros_env, tmp_path, points_model):
    out = tmp_path / "soak"
    cmd = [sys.executable, "-m", "rl100_bringup.soak", "--sim-hours", "0.0012", "--out", str(out),
           "--model", str(points_model), "--time-limit", "1.5", "--sample-period", "0.5", "--report-every", "1.5"]
    proc = subprocess.run(cmd, env=ros_env, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "h simulated, report written" in proc.stdout  # progress reports before the end
    data = json.loads((out / "soak.json").read_text())
    assert data["finished"]  # the final report replaced the progress ones
    total = data["total"]
    assert data["reached"] and data["sim_hours"] >= 0.0012 and data["up_errors"] == []
    assert total["episodes"] >= 3 and total["errors"] == 0
    # the sim robot's lockstep timeouts reach each episode's record (None: not reported)
    records = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert all(isinstance(r["lockstep_timeouts"], int) for r in records)
    assert total["lockstep_timeouts"] == sum(r["lockstep_timeouts"] for r in records)
    assert total["bags"] == total["bags_readable"] == total["episodes"] and data["unreadable_bags"] == []
    # policy actions per simulated second: 10 Hz nominal, fewer while the policy warms up in 1.5 s episodes
    assert 0.0 < total["control_rate_hz"] <= 11.0 and total["latency_p99_ms"] > 0
    archived = sorted(p.name for p in (out / "archive" / "hour_000").iterdir())
    assert len(archived) == total["episodes"] and all((out / "archive" / "hour_000" / n / "episode.json").is_file()
                                                      for n in archived)
    left = [p for p in (out / "episodes").iterdir() if not p.name.endswith(".partial")]
    assert left == []  # rotated out of the recorder's directory
    # the episode cut by the stop: when its bag was closed (more often under load), it is kept, readable
    assert all(b["readable"] for b in data["unreported_bags"])
    assert {"policy_node", "safety_node", "recorder_node", "sim_robot"} <= set(data["memory"])
    assert all(m["samples"] >= 3 and m["last_mb"] > 10 for m in data["memory"].values())
    assert "| all |" in (out / "soak.md").read_text() and (out / "memory.csv").stat().st_size > 0
