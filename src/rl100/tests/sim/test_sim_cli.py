"""``rl100 collect`` writes readable episodes; ``rl100 bench-sim`` prints its table."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics")

from rl100 import cli  # noqa: E402
from rl100.keys import ACTION, FLAG_DEMO, FLAGS, OBS_ENV_STATE, OBS_STATE, REWARD  # noqa: E402
from rl100.sim.collect import parse_options, parse_size  # noqa: E402


def test_collect_records_expert_episodes(tmp_path, capsys):
    data = pytest.importorskip("rl100.data")
    out = tmp_path / "demos"
    argv = ["collect", "--task", "juicing-place", "--episodes", "2", "--out", str(out), "--obs", "state,env_state"]
    assert cli.main([*argv, "--skill", "1.0", "--seed", "0", "--no-fsync"]) == 0
    assert "recorded 2 episodes" in capsys.readouterr().out
    ds = data.Dataset(out)
    assert len(ds) == 2
    ep = ds.episode(0)
    assert ep[OBS_STATE].shape[1:] == (15,) and ep[OBS_ENV_STATE].shape[1:] == (14,)
    assert ep[ACTION].shape == (ep.length, 7) and ep[ACTION].dtype == np.float32
    assert np.all(ep[FLAGS] == FLAG_DEMO)
    assert ep[REWARD][-1] == 1.0 and ep[REWARD][:-1].sum() == 0.0  # sparse, on the successful step
    assert ds.episode_info(0).success and ds.episode_info(0).meta["seed"] == 0


def test_collect_under_a_disturbance_records_it(tmp_path, capsys):
    data = pytest.importorskip("rl100.data")
    out = tmp_path / "pushed"
    argv = ["collect", "--task", "juicing-place", "--episodes", "1", "--out", str(out), "--no-fsync",
            "--disturbance", "push_arm:severe,sensor_noise"]
    assert cli.main(argv) == 0
    ds = data.Dataset(out)
    meta = ds.episode_info(0).meta
    assert [c["family"] for c in meta["disturbances"]] == ["push_arm", "sensor_noise"]
    events = meta["disturbance_events"]
    assert events and events[0]["family"] == "push_arm"  # the push happened and is on record
    assert cli.main([*argv[:-1], "shove", "--out", str(tmp_path / "x")]) == 2
    assert "unknown robustness family 'shove'" in capsys.readouterr().out


def test_collect_option_parsing():
    assert parse_options(["max_steps=50", "juicer_xy=[0.5, 0.1]", "points_sampler=fps"]) == {
        "max_steps": 50,
        "juicer_xy": (0.5, 0.1),
        "points_sampler": "fps",
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["max_steps"])
    assert parse_size("48x64") == (48, 64)
    with pytest.raises(ValueError, match="HxW"):
        parse_size("48")


def test_bench_sim_prints_a_markdown_table(capsys):
    argv = ["bench-sim", "--tasks", "juicing-place", "--modalities", "state", "--steps", "5"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "| task | obs | control steps/s | physics steps/s |" in out
    assert "| juicing-place | state |" in out


def test_bench_sim_repeats_reports_the_fastest_run(capsys):
    argv = ["bench-sim", "--tasks", "juicing-place", "--modalities", "state", "--steps", "3", "--repeats", "2"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "fastest of 2 runs" in out and out.count("| juicing-place | state |") == 1
