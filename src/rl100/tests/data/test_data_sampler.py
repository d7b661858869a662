"""SequenceSampler windows and padding against a hand-computed case, filters, and the torch wrapper."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rl100
from rl100.data import EPISODE_INDEX, STEP_INDEX, TERMINAL, VALID, Dataset, DatasetWriter, SequenceSampler
from rl100.keys import ACTION, DONE, FLAG_DEMO, FLAG_INTERVENTION, FLAG_ROLLOUT, FLAGS, OBS_STATE, REWARD


@pytest.fixture
def tiny(tmp_path) -> Dataset:
    """Episode 0: T=4, success; episode 1: T=2, failure. state = 100 e + t, action = 10 e + t, reward = t + 1."""
    with DatasetWriter(tmp_path / "tiny", fsync=False) as w:
        for e, length in enumerate([4, 2]):
            ep = w.begin_episode()
            for t in range(length):
                obs = {OBS_STATE: np.array([100 * e + t], np.float32)}
                ep.add_step(obs, np.array([10 * e + t], np.float32), t + 1.0, FLAG_DEMO if t else FLAG_INTERVENTION)
            ep.end(success=e == 0)
    return Dataset(tmp_path / "tiny")


# (episode, current step, obs states, actions, rewards, valid, done) for n_obs=2, horizon=3, default padding
EXPECTED = [
    (0, 0, [0, 0], [0, 0, 1], [0, 1, 2], [0, 1, 1], [0, 0, 0]),
    (0, 1, [0, 1], [0, 1, 2], [1, 2, 3], [1, 1, 1], [0, 0, 0]),
    (0, 2, [1, 2], [1, 2, 3], [2, 3, 4], [1, 1, 1], [0, 0, 1]),
    (0, 3, [2, 3], [2, 3, 3], [3, 4, 0], [1, 1, 0], [0, 1, 1]),
    (1, 0, [100, 100], [10, 10, 11], [0, 1, 2], [0, 1, 1], [0, 0, 1]),
    (1, 1, [100, 101], [10, 11, 11], [1, 2, 0], [1, 1, 0], [0, 1, 1]),
]


def test_windows_match_hand_computed_case(tiny):
    sampler = SequenceSampler(tiny, [OBS_STATE], n_obs=2, horizon=3)
    assert (sampler.pad_before, sampler.pad_after) == (1, 1)
    assert len(sampler) == len(EXPECTED)
    for i, (episode, step, states, actions, rewards, valid, done) in enumerate(EXPECTED):
        s = sampler[i]
        assert set(s) == {OBS_STATE, ACTION, REWARD, DONE, TERMINAL, FLAGS, VALID, EPISODE_INDEX, STEP_INDEX}
        assert s[OBS_STATE].shape == (2, 1) and s[ACTION].shape == (3, 1)
        assert s[OBS_STATE].dtype == np.float32 and s[REWARD].dtype == np.float32
        assert (int(s[EPISODE_INDEX]), int(s[STEP_INDEX])) == (episode, step), i
        np.testing.assert_array_equal(s[OBS_STATE][:, 0], states, err_msg=f"window {i}")
        np.testing.assert_array_equal(s[ACTION][:, 0], actions, err_msg=f"window {i}")
        np.testing.assert_array_equal(s[REWARD], rewards, err_msg=f"window {i}")
        np.testing.assert_array_equal(s[VALID], np.array(valid, bool), err_msg=f"window {i}")
        np.testing.assert_array_equal(s[DONE], np.array(done, bool), err_msg=f"window {i}")
        np.testing.assert_array_equal(s[TERMINAL], np.array(done, bool) & (episode == 0), err_msg=f"window {i}")
    # flags are edge padded: step 0 carries the intervention bit
    np.testing.assert_array_equal(sampler[0][FLAGS], [FLAG_INTERVENTION, FLAG_INTERVENTION, FLAG_DEMO])
    np.testing.assert_array_equal(sampler[-1][ACTION][:, 0], [10, 11, 11])


def test_windows_without_padding_and_single_step(tiny):
    sampler = SequenceSampler(tiny, [OBS_STATE], n_obs=2, horizon=3, pad_before=0, pad_after=0)
    assert [sampler.window(i) for i in range(len(sampler))] == [(0, 0), (0, 1)]  # episode 1 too short
    assert all(sampler[i][VALID].all() for i in range(len(sampler)))
    single = SequenceSampler(tiny, None, n_obs=1, horizon=1)
    assert len(single) == 6 and single.obs_keys == [OBS_STATE]
    np.testing.assert_array_equal([single[i][ACTION][0, 0] for i in range(6)], [0, 1, 2, 3, 10, 11])


def test_sampler_argument_errors(tiny):
    with pytest.raises(ValueError, match="n_obs <= horizon"):
        SequenceSampler(tiny, [OBS_STATE], n_obs=4, horizon=3)
    with pytest.raises(ValueError, match="pad_before"):
        SequenceSampler(tiny, [OBS_STATE], n_obs=2, horizon=3, pad_before=3)
    with pytest.raises(ValueError, match=r"observation\.rgb"):
        SequenceSampler(tiny, ["observation.rgb"], n_obs=2, horizon=3)
    with pytest.raises(IndexError):
        SequenceSampler(tiny, [OBS_STATE], n_obs=2, horizon=3)[6]


def test_filters_and_sampler_on_a_view(small_dataset):
    ds = small_dataset([5, 3, 8])  # episodes 0, 2: demos, success; episode 1: rollout with an intervention, failure
    assert [i.index for i in ds.filter(success=True).infos] == [0, 2]
    assert [i.index for i in ds.filter(success=False).infos] == [1]
    assert [i.index for i in ds.filter(flags_all=FLAG_DEMO).infos] == [0, 2]
    assert [i.index for i in ds.filter(flags_any=FLAG_INTERVENTION).infos] == [1]
    assert [i.index for i in ds.filter(flags_none=FLAG_ROLLOUT).infos] == [0, 2]
    assert [i.index for i in ds.filter(where=lambda info: info.length > 4).infos] == [0, 2]
    assert len(ds.filter(success=True, flags_any=FLAG_INTERVENTION)) == 0
    view = ds.subset([2])
    sampler = SequenceSampler(view, None, n_obs=2, horizon=4)
    assert len(sampler) == 8 and int(sampler[0][EPISODE_INDEX]) == 0  # position within the view
    assert sampler[0][ACTION][0, 0] == 2  # action[0] encodes the dataset episode


def test_torch_wrapper(small_dataset):
    torch = pytest.importorskip("torch")
    from rl100.data import SequenceDataset

    ds = small_dataset([5, 3, 8])
    sampler = SequenceSampler(ds, None, n_obs=2, horizon=4)
    tds = SequenceDataset(sampler)
    assert len(tds) == 16
    batch = next(iter(torch.utils.data.DataLoader(tds, batch_size=4, shuffle=False)))
    assert batch["observation.rgb"].shape == (4, 2, 4, 5, 3) and batch["observation.rgb"].dtype == torch.uint8
    assert batch[ACTION].shape == (4, 4, 3) and batch[ACTION].dtype == torch.float32
    assert batch[VALID].dtype == torch.bool and batch[STEP_INDEX].tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(batch[ACTION][1], torch.from_numpy(sampler[1][ACTION]))


def test_import_needs_neither_torch_nor_rclpy():
    code = (
        "import sys\nfrom rl100.data import *\nimport rl100.data.sampler, rl100.data.stats\n"
        "bad = [m for m in ('torch', 'rclpy') if m in sys.modules]\nassert not bad, bad"
    )
    env_path = str(Path(rl100.__file__).resolve().parents[1])
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": env_path}, timeout=60)
