"""The main job, small: evaluation episodes through the real simulated orange_juicer graph.

``python -m rl100_bringup.up orange_juicer --episodes 2`` starts the sim robot, policy, safety and
recorder nodes as separate processes talking over DDS, runs two short episodes (sim reset, a
recorded episode, the policy in control through the safety node, the success detector polled),
stops the graph and prints the results. The policy is a tiny untrained one-step model on the
shipped model's inputs (robot state + point cloud), so both episodes run to their time limit:
the results, the printed table and one labelled, readable MCAP bag per episode are checked, and
the bags go through the trainer's ingest: the recorder records /rl100/points (orange_juicer.yaml),
so ``rl100 ingest --card`` of the model makes its ``observation.points`` and a policy of that spec
trains on the windows.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy")
TIME_LIMIT = 1.5  # s simulated per episode


def test_episodes_through_the_graph_are_measured_and_recorded(ros_env, tmp_path, points_model):
    from rl100_recorder.bag_writer import list_episodes
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    from rl100.data import Dataset
    from rl100.ingest import ingest
    from rl100_msgs.msg import EpisodeEvent
    from rl100_ros import topics

    record, results = tmp_path / "episodes", tmp_path / "results.json"
    cmd = [sys.executable, "-m", "rl100_bringup.up", "orange_juicer", f"model:={points_model}",
           f"record_dir:={record}", "--episodes", "2", "--time-limit", str(TIME_LIMIT),
           "--results-json", str(results), "--duration", "100"]
    proc = subprocess.run(cmd, env=ros_env, capture_output=True, text=True, timeout=150)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "[episodes] 1/2 seed 1: failure after" in out and "[episodes] 2/2 seed 2:" in out
    table = out[out.index("episode   seed  result"):]
    assert "success rate      0/2 = 0 %" in table and "policy latency    p50" in table
    assert "mean cycle time   n/a" in table  # no successful episode to time

    data = json.loads(results.read_text())
    summary, episodes = data["summary"], data["episodes"]
    assert (summary["episodes"], summary["successes"]) == (2, 0)
    assert data["meta"]["model"] == str(points_model) and data["meta"]["error"] == ""
    assert [e["seed"] for e in episodes] == [1, 2]
    for e in episodes:
        assert not e["success"] and TIME_LIMIT <= e["duration"] < TIME_LIMIT + 1.5  # polls lag
        assert e["actions"] > 0, e  # the policy drove the robot through the safety node
    assert 0.0 < summary["control_rate"] <= 11.0 and summary["nominal_rate"] == pytest.approx(10.0)
    assert summary["predictions"] >= 2 and 0.0 < summary["latency_p50_ms"] <= summary["latency_p99_ms"]

    bags = list_episodes(record)
    assert [b.name for b in bags] == [e["episode_id"] for e in episodes]
    assert [str(b) for b in bags] == [e["bag"] for e in episodes]
    for bag, episode in zip(bags, episodes, strict=True):
        side = json.loads((bag / "episode.json").read_text())
        assert side["label"] == "failure" and side["task"] == "juicing-place"
        assert f"seed {episode['seed']}" in side["meta"]["note"]
        with AnyReader([bag], default_typestore=get_typestore(Stores.EMPTY)) as reader:
            got: dict = {}
            for conn, _, raw in reader.messages():
                got.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
        assert [(e.event, e.label) for e in got[topics.EPISODE_EVENT]] == [
            (EpisodeEvent.EVENT_START, EpisodeEvent.LABEL_UNKNOWN),
            (EpisodeEvent.EVENT_END, EpisodeEvent.LABEL_FAILURE)]
        assert len(got[topics.ACTION_CHUNK]) > 0 and len(got[topics.INTERVENTION]) > 0
        assert len(got[topics.POINTS]) > 0 and {m.header.frame_id for m in got[topics.POINTS]} == {"fr3_link0"}
        assert not any(m.active for m in got[topics.INTERVENTION])  # nobody took over
        modes = {m.mode for m in got[topics.SAFETY_STATUS]}
        assert 0 in modes  # autonomous (rl100_msgs/SafetyStatus MODE_AUTONOMOUS) during the run

    # the bags hold the model's point clouds: ingested for exactly its observation spec
    from rl100.data import SequenceSampler
    from rl100.export.card import card_path, read_card
    from rl100.ingest import IngestSpec
    from rl100.ingest_points import PointsPreprocessing
    from rl100.keys import ACTION, OBS_POINTS, OBS_STATE
    from rl100.pointcloud import points_preprocessing

    plain = ingest([record], tmp_path / "no_points")  # no preprocessing given: clouds left out, said so
    assert len(plain["ingested"]) == 2 and len(plain["points_ignored"]) == 2, plain
    card = read_card(card_path(points_model))
    pre = PointsPreprocessing.from_card(card)
    report = ingest([record], tmp_path / "dataset", IngestSpec(points=pre))
    assert len(report["ingested"]) == 2 and report["failed"] == [], report
    assert sum(n for _, n, _ in report["dropped"]) <= 2, report  # at most a leading tick per episode
    ds = Dataset(tmp_path / "dataset")
    assert not ds.episode_info(0).success and not ds.episode_info(1).success
    assert np.isfinite(np.asarray(ds.episode(0)["action"])).all()
    entry = next(e for e in card["observation_spec"] if e["key"] == OBS_POINTS)
    assert ds.specs[OBS_POINTS].shape == tuple(entry["shape"][1:]) == (64, 3)
    assert points_preprocessing(ds.meta) == {k: entry[k] for k in ("crop_lo", "crop_hi", "sampler", "depth_filter")}
    for i in range(len(ds)):
        pts = np.asarray(ds.episode(i)[OBS_POINTS])
        assert len(pts) > 5 and np.isfinite(pts).all()
        assert (pts >= np.float32(entry["crop_lo"])).all() and (pts <= np.float32(entry["crop_hi"])).all()
        assert np.ptp(pts[:, :, :], axis=1).max() > 0.01  # a scene, not the all-zeros "no cloud" fill

    torch = pytest.importorskip("torch")
    from rl100.policy.config import PolicyConfig
    from rl100.policy.consistency import ConsistencyPolicy

    config = PolicyConfig.from_dict(card["policy_config"])
    sampler = SequenceSampler(ds, keys=config.obs_keys, n_obs=config.n_obs, horizon=config.horizon)
    batch = sampler.batch(np.arange(min(len(sampler), 8)))
    assert batch[OBS_POINTS].shape == (len(batch[ACTION]), config.n_obs, 64, 3)
    assert batch[OBS_STATE].shape[1:] == (config.n_obs, 15)
    obs = {k: torch.from_numpy(np.asarray(batch[k])) for k in config.obs_keys}
    chunk = ConsistencyPolicy(config).predict_action(obs)
    assert chunk.shape == (len(batch[ACTION]), config.horizon, 7) and torch.isfinite(chunk).all()


def test_the_loop_collects_and_evaluates_through_the_graph(ros_env, tmp_path, points_model):
    """rl100_bringup.stack_loop: the RL loop's Collector / Evaluator run episodes on the stack."""
    from rl100_bringup.stack_loop import StackCollector, StackEpisodes

    from rl100.data import Dataset
    from rl100.keys import OBS_POINTS
    from rl100.loop.collectors import ENV_STEPS, EPISODES, SUCCESS_RATE

    stack = StackCollector(StackEpisodes(extra=("--time-limit", str(TIME_LIMIT)), env=ros_env))
    dataset = Dataset(stack.collect(points_model, tmp_path / "collect", 2, seed=5))
    assert len(dataset.infos) == 2 and dataset.specs[OBS_POINTS].shape == (64, 3)
    results = json.loads((tmp_path / "collect" / "episodes.json").read_text())
    assert [e["seed"] for e in results["episodes"]] == [5, 6]  # episode k uses seed + k
    metrics = stack.evaluate(points_model, 1, seed=9)
    assert metrics[SUCCESS_RATE] == 0.0 and metrics[EPISODES] == 1 and metrics[ENV_STEPS] > 0
