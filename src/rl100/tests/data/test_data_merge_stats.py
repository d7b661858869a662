"""merge() of datasets (with provenance) and streaming statistics."""

from __future__ import annotations

import numpy as np
import pytest

from rl100.data import Dataset, DatasetWriter, compute_stats, merge
from rl100.keys import ACTION, OBS_RGB, OBS_STATE, REWARD


def test_merge_copies_episodes_with_origin(tmp_path, h):
    h.write_episodes(tmp_path / "demos", [3, 4])
    h.write_episodes(tmp_path / "round1", [2, 5, 6], first=2)
    rollouts = Dataset(tmp_path / "round1").filter(success=True)  # episodes 2 and 4
    merged = merge([tmp_path / "demos", rollouts], tmp_path / "merged", fsync=False)
    assert len(merged) == 4 and merged.meta == {"task": "unit"}
    merged.validate()
    sources = [(0, 3), (1, 4), (2, 2), (4, 6)]  # (original episode, length)
    for pos, (e, length) in enumerate(sources):
        for key, value in h.expected_episode(e, length).items():
            np.testing.assert_array_equal(merged.episode(pos)[key], value, err_msg=f"{pos} {key}")
        info = merged.episode_info(pos)
        assert info.index == pos and info.meta == {"seed": e, "source": "test"}
        source_index = e if e < 2 else e - 2  # round1's directories are numbered from 0
        assert info.origin["episode"] == source_index
        assert info.origin["dataset"].endswith("demos" if e < 2 else "round1")
    # appending a later round to the merged dataset; provenance chains through
    merge([merged.subset([3])], tmp_path / "merged2", hardlink=True, fsync=False)
    twice = Dataset(tmp_path / "merged2")
    assert twice.episode_info(0).origin["origin"]["dataset"].endswith("round1")
    assert (twice.episode_path(0) / f"{ACTION}.npy").stat().st_nlink == 2  # hard-linked, not copied
    merge([tmp_path / "demos"], tmp_path / "merged", fsync=False)
    assert len(Dataset(tmp_path / "merged")) == 6


def test_merge_rejects_mismatches(tmp_path, h):
    h.write_episodes(tmp_path / "a", [3])
    with DatasetWriter(tmp_path / "b", meta={"task": "unit"}, fsync=False) as w:
        ep = w.begin_episode()
        ep.add_step({OBS_STATE: np.zeros(4, np.float32)}, np.zeros(2, np.float32), 0.0, 1)
        ep.end(success=True)
    with pytest.raises(ValueError, match="key specs differ"):
        merge([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    with pytest.raises(ValueError, match="specs differ"):
        merge([tmp_path / "b"], tmp_path / "a")
    h.write_episodes(tmp_path / "c", [3], meta={"task": "other"})
    with pytest.raises(ValueError, match="disagree on dataset meta 'task'"):
        merge([tmp_path / "a", tmp_path / "c"], tmp_path / "out")
    merged = merge([tmp_path / "a", tmp_path / "c"], tmp_path / "out", meta={"task": "mixed"}, fsync=False)
    assert merged.meta == {"task": "mixed"} and len(merged) == 2
    with pytest.raises(ValueError, match="cannot be the merge destination"):
        merge([tmp_path / "a"], tmp_path / "a")


def test_stats_match_numpy(tmp_path, h):
    lengths = [5, 3, 8]
    h.write_episodes(tmp_path / "ds", lengths)
    ds = Dataset(tmp_path / "ds")
    expected = [h.expected_episode(e, n) for e, n in enumerate(lengths)]
    stats = compute_stats(ds, chunk_bytes=40, reduce_axes={OBS_RGB: (0, 1)})  # tiny chunks: many merges
    assert set(stats) == {OBS_STATE, OBS_RGB, ACTION, REWARD}
    for key in (OBS_STATE, ACTION, REWARD):
        data = np.concatenate([x[key] for x in expected]).astype(np.float64)
        st = stats[key]
        assert st.count == sum(lengths) and st.mean.shape == data.shape[1:]
        np.testing.assert_allclose(st.mean, data.mean(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(st.std, data.std(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(st.min, data.min(0))
        np.testing.assert_array_equal(st.max, data.max(0))
    rgb = np.concatenate([x[OBS_RGB] for x in expected]).astype(np.float64).reshape(-1, 3)
    assert stats[OBS_RGB].mean.shape == (3,) and stats[OBS_RGB].count == rgb.shape[0]
    np.testing.assert_allclose(stats[OBS_RGB].mean, rgb.mean(0))
    np.testing.assert_allclose(stats[OBS_RGB].std, rgb.std(0))
    assert stats[ACTION].to_dict()["count"] == 16


def test_stats_errors(small_dataset, tmp_path):
    ds = small_dataset([2])
    with pytest.raises(ValueError, match="'nope'"):
        compute_stats(ds, ["nope"])
    with pytest.raises(ValueError, match="reduce axes"):
        compute_stats(ds, [OBS_RGB], reduce_axes={OBS_RGB: (3,)})
    DatasetWriter(tmp_path / "empty").close()
    with pytest.raises(ValueError, match="no steps"):
        compute_stats(Dataset(tmp_path / "empty"))
