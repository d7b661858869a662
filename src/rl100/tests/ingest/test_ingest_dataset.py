"""rl100 ingest: recorder bags -> dataset steps, flags, rewards, success; re-runs skip known bags."""

from __future__ import annotations

import numpy as np
import pytest

from rl100 import keys
from rl100.data import Dataset
from rl100.ingest import IngestError, IngestSpec, ingest


def test_bags_become_episodes_with_flags_and_success(tmp_path, make_episode):
    bags = tmp_path / "bags"
    make_episode(bags, "e1_rollout", ticks=5, active=(2, 3), label="success")
    make_episode(bags, "e2_demo", ticks=4, label="failure", source="demo")
    make_episode(bags, "e3_unlabelled", ticks=3, label="unknown")
    spec = IngestSpec(labels=("success", "failure"))
    report = ingest([bags], tmp_path / "ds", spec, fsync=False)
    assert [s for _, s in report["ingested"]] == [5, 4]
    assert report["skipped"] == [(str(bags / "e3_unlabelled"), "label 'unknown' not in ('success', 'failure')")]

    ds = Dataset(tmp_path / "ds")
    assert len(ds) == 2
    info, ep = ds.episode_info(0), ds.episode(0)
    assert info.success and info.meta["bag_episode_id"] == "e1_rollout" and info.meta["source"] == "rollout"
    assert list(ep[keys.FLAGS]) == [keys.FLAG_ROLLOUT] * 2 + [keys.FLAG_INTERVENTION] * 2 + [keys.FLAG_ROLLOUT]
    assert list(ep[keys.REWARD]) == [0, 0, 0, 0, 1]
    state, action = np.asarray(ep[keys.OBS_STATE]), np.asarray(ep[keys.ACTION])
    assert state.shape == (5, 15) and action.shape == (5, 7)
    # state: pose x = tick, quat xyzw identity, gripper width 0.02, 7 joints = tick
    np.testing.assert_allclose(state[3], [3, 0, 0.5, 0, 0, 0, 1, 0.02] + [3] * 7, atol=1e-6)
    # action: target x = tick + 0.5, rotation vector 0.2 rad about z, gripper tick / 10
    np.testing.assert_allclose(action[3], [3.5, 0, 0.5, 0, 0, 0.2, 0.3], atol=1e-6)

    info, ep = ds.episode_info(1), ds.episode(1)
    assert not info.success and list(ep[keys.FLAGS]) == [keys.FLAG_DEMO] * 4
    assert float(np.sum(ep[keys.REWARD])) == 0.0

    # a second run over the same directory adds nothing
    again = ingest([bags], tmp_path / "ds", spec, fsync=False)
    assert again["ingested"] == [] and len(again["skipped"]) == 3
    assert len(Dataset(tmp_path / "ds")) == 2


def test_caller_meta_joins_the_episodes_by_episode_id(tmp_path, make_episode):
    bags = tmp_path / "bags"
    make_episode(bags, "e1", ticks=4, active=(2, 3), label="failure")
    make_episode(bags, "e2", ticks=3, label="success")
    extra = {"e1": {"takeover_step": 2, "takeover_reason": "stalled"}, "not_here": {"x": 1}}
    with pytest.raises(ValueError, match=r"replace ingest's own keys \['label'\]"):
        ingest([bags], tmp_path / "ds", fsync=False, episode_meta={"e1": {"label": "success"}})
    assert not (tmp_path / "ds").exists()  # refused before anything was written
    ingest([bags], tmp_path / "ds", fsync=False, episode_meta=extra)
    ds = Dataset(tmp_path / "ds")
    by_id = {i.meta["bag_episode_id"]: i.meta for i in ds.infos}
    assert by_id["e1"]["takeover_reason"] == "stalled" and by_id["e1"]["takeover_step"] == 2
    assert "takeover_reason" not in by_id["e2"] and by_id["e1"]["label"] == "failure"


def test_an_episode_from_a_raised_stand_goes_in_as_on_the_training_table(tmp_path, make_episode):
    bags = tmp_path / "bags"
    make_episode(bags, "flat", ticks=3)
    make_episode(bags, "raised", ticks=3, meta={"table_dz": 0.02})
    make_episode(bags, "bad", ticks=3, meta={"table_dz": "high"})
    report = ingest([bags], tmp_path / "ds", fsync=False, skip_bad=True)
    assert [(b.rsplit("/", 1)[-1], why) for b, why in report["failed"]] == [
        ("bad", "episode meta table_dz is not a usable table shift: could not convert string to float: 'high'")]
    ds = Dataset(tmp_path / "ds")
    by_id = {info.meta["bag_episode_id"]: i for i, info in enumerate(ds.infos)}
    flat, raised = ds.episode(by_id["flat"]), ds.episode(by_id["raised"])
    assert ds.episode_info(by_id["raised"]).meta["table_dz"] == 0.02
    s_flat, s_raised = np.asarray(flat[keys.OBS_STATE]), np.asarray(raised[keys.OBS_STATE])
    np.testing.assert_allclose(s_raised[:, 2], s_flat[:, 2] - 0.02, atol=1e-6)  # TCP z in the table frame
    np.testing.assert_allclose(s_raised[:, 3:], s_flat[:, 3:])  # the rest as recorded
    a_flat, a_raised = np.asarray(flat[keys.ACTION]), np.asarray(raised[keys.ACTION])
    np.testing.assert_allclose(a_raised[:, 2], a_flat[:, 2] - 0.02, atol=1e-6)  # targets too
    np.testing.assert_allclose(a_raised[:, 3:], a_flat[:, 3:])


def test_camera_images_are_sampled_at_the_ticks(tmp_path, make_episode):
    bag = make_episode(tmp_path / "bags", "cam", ticks=3, rgb=True)
    ingest([bag], tmp_path / "ds", IngestSpec(rgb_topic="/camera/camera/color/image_raw"), fsync=False)
    rgb = np.asarray(Dataset(tmp_path / "ds").episode(0)[keys.OBS_RGB])
    assert rgb.shape == (3, 2, 3, 3) and rgb.dtype == np.uint8
    assert list(rgb[:, 1, 2, 0]) == [0, 1, 2] and (rgb[..., 2] == 200).all()


def test_cli_entry_points(tmp_path, make_episode, capsys):
    import argparse

    from rl100 import ingest as module

    make_episode(tmp_path / "bags", "e1")
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    assert module.run(parser.parse_args([str(tmp_path / "bags"), "--out", str(tmp_path / "ds")])) == 0
    assert "1 episode(s) added" in capsys.readouterr().out


def test_missing_topic_is_named(tmp_path, make_episode):
    bag = make_episode(tmp_path / "bags", "e1")
    with pytest.raises(IngestError, match=r"e1: ValueError: topics \['/nope'\] not in the bag"):
        ingest([bag], tmp_path / "ds", IngestSpec(pose_topic="/nope"), fsync=False)
