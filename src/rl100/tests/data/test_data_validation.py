"""Step validation in the writer and whole-dataset validation in the reader: errors name episode, step and key."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rl100.data import Dataset, DatasetError, DatasetWriter
from rl100.keys import ACTION, DONE, OBS_RGB, OBS_STATE


@pytest.fixture
def open_episode(tmp_path, h):
    """Episode 1 (episode 0 finalised first) with 2 accepted steps: the next step is step 2."""
    w = DatasetWriter(tmp_path / "ds", fsync=False)
    ep = w.begin_episode()
    ep.add_step(*h.make_step(0, 0))
    ep.end(success=True)
    ep = w.begin_episode()
    ep.add_step(*h.make_step(1, 0))
    ep.add_step(*h.make_step(1, 1))
    yield ep
    if ep.state == "open":
        ep.end(success=True)
    w.close()


def bad_step(h, **changes):
    obs, action, reward, flags = h.make_step(1, 2)
    obs = {**obs, **changes.pop("obs", {})}
    for name in changes.pop("drop", ()):
        del obs[name]
    args = {"obs": obs, "action": action, "reward": reward, "flags": flags, **changes}
    return args["obs"], args["action"], args["reward"], args["flags"]


@pytest.mark.parametrize(
    ("changes", "key", "problem"),
    [
        ({"obs": {OBS_STATE: np.zeros(5, np.float32)}}, OBS_STATE, r"shape \(5,\)"),
        ({"obs": {OBS_RGB: np.zeros((4, 5, 3), np.float32)}}, OBS_RGB, "dtype float32"),
        ({"obs": {OBS_STATE: np.array([0, np.nan, 0, 0], np.float32)}}, OBS_STATE, r"NaN/Inf.*first at \(1,\)"),
        ({"action": np.array([0, 0, np.inf], np.float32)}, ACTION, "NaN/Inf"),
        ({"action": np.zeros((1, 3), np.float32)}, ACTION, "shape"),
        ({"drop": [OBS_RGB]}, OBS_RGB, "missing"),
        ({"obs": {"observation.extra": np.zeros(1)}}, "observation.extra", "not a dataset key"),
        ({"obs": {"reward": np.zeros(())}}, "reward", "reserved"),
        ({"reward": float("nan")}, "reward", "finite scalar"),
        ({"reward": np.zeros(2)}, "reward", "finite scalar"),
        ({"flags": 256}, "flags", r"\[0, 255\]"),
        ({"flags": 1.5}, "flags", "int bit field"),
        ({"flags": True}, "flags", r"\[0, 255\]"),
    ],
)
def test_step_errors_name_episode_step_key(open_episode, h, changes, key, problem):
    with pytest.raises(ValueError, match=rf"episode 1 step 2 key '{key}': .*{problem}"):
        open_episode.add_step(*bad_step(h, **changes))
    # the rejected step left the episode unchanged and it can go on
    assert open_episode.num_steps == 2
    open_episode.add_step(*h.make_step(1, 2))
    info = open_episode.end(success=True)
    ds = Dataset(info_root := open_episode.path.parent)
    np.testing.assert_array_equal(ds.episode(1)[ACTION], h.expected_episode(1, 3)[ACTION])
    assert info_root.name == "ds" and info.length == 3


def test_obs_must_be_mapping(open_episode, h):
    _, action, reward, flags = h.make_step(1, 2)
    with pytest.raises(ValueError, match="episode 1 step 2: obs must be a mapping"):
        open_episode.add_step([1, 2], action, reward, flags)


def test_first_step_rejects_unstorable_values(tmp_path):
    with DatasetWriter(tmp_path / "ds", fsync=False) as w:
        ep = w.begin_episode()
        with pytest.raises(ValueError, match=r"episode 0 step 0 key 'observation.text': unsupported dtype"):
            ep.add_step({"observation.text": np.array("hello")}, np.zeros(1, np.float32), 0.0, 0)
        with pytest.raises(ValueError, match=r"episode 0 step 0 key 'bad/name': invalid key name"):
            ep.add_step({"bad/name": np.zeros(1)}, np.zeros(1, np.float32), 0.0, 0)
        with pytest.raises(ValueError, match=r"episode 0 step 0 key 'observation.state': 1 NaN"):
            ep.add_step({"observation.state": np.array([np.nan])}, np.zeros(1, np.float32), 0.0, 0)
        ep.abort()


def corrupt(ds, position, key, array):
    np.save(ds.episode_path(position) / f"{key}.npy", array)


def test_validate_detects_wrong_shape(small_dataset):
    ds = small_dataset()
    corrupt(ds, 1, ACTION, np.zeros((2, 3), np.float32))  # episode 1 has 3 steps
    with pytest.raises(DatasetError, match=r"episode 1 \(episode_000001\) key 'action': float32\(2, 3\) != expected"):
        Dataset(ds.root).validate()


def test_validate_detects_nan(small_dataset):
    ds = small_dataset()
    state = np.array(ds.episode(2)[OBS_STATE])
    state[4, 1] = np.nan
    corrupt(ds, 2, OBS_STATE, state)
    with pytest.raises(DatasetError, match=r"episode 2 .* key 'observation.state': NaN/Inf, first at step 4"):
        Dataset(ds.root).validate()
    Dataset(ds.root).validate(check_values=False)


def test_validate_detects_missing_extra_and_inconsistent_files(small_dataset):
    ds = small_dataset()
    (ds.episode_path(0) / f"{OBS_RGB}.npy").unlink()
    np.save(ds.episode_path(0) / "stray.npy", np.zeros(3))
    done = np.zeros(3, bool)
    corrupt(ds, 1, DONE, done)
    with pytest.raises(DatasetError) as err:
        Dataset(ds.root).validate()
    message = str(err.value)
    assert "3 problem(s)" in message
    assert f"episode 0 (episode_000000) key '{OBS_RGB}': unreadable" in message
    assert "episode 0 (episode_000000) key 'stray': file not in the dataset key specs" in message
    assert "episode 1 (episode_000001) key 'done': must be True exactly at the last step" in message


def test_corrupt_episode_json_is_reported_on_open(small_dataset):
    ds = small_dataset()
    (ds.episode_path(1) / "episode.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"episode 1 \(episode_000001\): unreadable episode.json"):
        Dataset(ds.root)


def test_newer_format_version_is_refused(small_dataset):
    ds = small_dataset([2])
    header = json.loads((ds.root / "dataset.json").read_text())
    header["format_version"] = 99
    (ds.root / "dataset.json").write_text(json.dumps(header))
    with pytest.raises(ValueError, match="newer than supported"):
        Dataset(ds.root)
