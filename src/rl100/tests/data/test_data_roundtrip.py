"""Write -> read round trip, memmaps, dataset/episode meta, appending, writer life cycle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rl100.data import TERMINAL, Dataset, DatasetWriter, KeySpec
from rl100.keys import ACTION, DONE, FLAG_DEMO, FLAG_INTERVENTION, FLAGS, OBS_RGB, OBS_STATE, REWARD


def test_roundtrip_exact(tmp_path, h):
    lengths = [5, 1, 12]
    h.write_episodes(tmp_path / "ds", lengths)
    ds = Dataset(tmp_path / "ds")
    assert len(ds) == 3
    assert ds.num_steps == sum(lengths)
    np.testing.assert_array_equal(ds.lengths, lengths)
    assert ds.meta == {"task": "unit"}
    assert ds.specs[OBS_RGB] == KeySpec(np.dtype(np.uint8), h.IMAGE_SHAPE)
    assert ds.specs[OBS_STATE] == KeySpec(np.dtype(np.float32), (h.STATE_DIM,))
    assert ds.specs[ACTION] == KeySpec(np.dtype(np.float32), (h.ACTION_DIM,))
    for e, length in enumerate(lengths):
        ep = ds.episode(e)
        expected = h.expected_episode(e, length)
        assert set(ep) == {OBS_STATE, OBS_RGB, ACTION, REWARD, FLAGS, DONE, TERMINAL}
        for key, value in expected.items():
            assert ep[key].dtype == value.dtype
            np.testing.assert_array_equal(ep[key], value, err_msg=f"episode {e} key {key}")
        last = np.arange(length) == length - 1
        np.testing.assert_array_equal(ep[DONE], last)
        np.testing.assert_array_equal(ep[TERMINAL], last & (e % 2 == 0))
        info = ds.episode_info(e)
        assert info.index == e and info.length == length and info.success == (e % 2 == 0)
        assert info.meta == {"seed": e, "source": "test"}
        assert info.reward_sum == pytest.approx(expected[REWARD].sum())
        assert info.flags_any == int(np.bitwise_or.reduce(expected[FLAGS]))
        assert info.flags_all == int(np.bitwise_and.reduce(expected[FLAGS]))
    ds.validate()


def test_arrays_are_readonly_memmaps(small_dataset):
    ds = small_dataset()
    arr = ds.episode(0)[OBS_RGB]
    assert isinstance(arr, np.memmap)
    assert not arr.flags.writeable
    assert ds.episode(0) is ds.episode(0)  # cached view
    assert ds.episode(-1).info.index == 2


def test_memmap_lru_bound(tmp_path, h):
    h.write_episodes(tmp_path / "ds", [2, 2, 2, 2])
    ds = Dataset(tmp_path / "ds", max_open_episodes=2)
    for i in range(4):
        ds.episode(i)[ACTION]
    assert len(ds._cache) == 2


def test_long_episode_streams_in_chunks(tmp_path, h):
    """With tiny chunks the data reaches the file while recording, and reads back exactly."""
    with DatasetWriter(tmp_path / "ds", chunk_bytes=64, fsync=False) as w:
        ep = w.begin_episode()
        for t in range(50):
            ep.add_step(*h.make_step(0, t))
        rgb_file = ep.path / f"{OBS_RGB}.npy"
        row = int(np.prod(h.IMAGE_SHAPE))
        assert rgb_file.stat().st_size >= 49 * row  # at most one buffered step
        ep.end(success=True)
    ds = Dataset(tmp_path / "ds")
    for key, value in h.expected_episode(0, 50).items():
        np.testing.assert_array_equal(ds.episode(0)[key], value)


def test_files_and_json_layout(small_dataset):
    ds = small_dataset([4])
    header = json.loads((ds.root / "dataset.json").read_text())
    assert header["format_version"] == 1 and header["meta"] == {"task": "unit"}
    assert header["keys"][ACTION] == {"dtype": "<f4", "shape": [3]}
    assert "pid" in header["created"] and "time" in header["created"]
    ep_dir = ds.root / "episode_000000"
    names = sorted(p.name for p in ep_dir.iterdir())
    assert names == sorted(["episode.json", *(f"{k}.npy" for k in ds.specs)])
    arr = np.load(ep_dir / f"{ACTION}.npy", allow_pickle=False)  # plain npy, loadable without mmap
    assert arr.shape == (4, 3)
    info = json.loads((ep_dir / "episode.json").read_text())
    assert info["length"] == 4 and info["success"] is True and info["flags"]["counts"] == {"demo": 4}


def test_append_to_existing_dataset(tmp_path, h):
    h.write_episodes(tmp_path / "ds", [3, 4])
    h.write_episodes(tmp_path / "ds", [5], first=2, meta={"task": "unit", "robot": "panda"})
    ds = Dataset(tmp_path / "ds")
    assert len(ds) == 3 and ds.meta == {"task": "unit", "robot": "panda"}
    np.testing.assert_array_equal(ds.episode(2)[ACTION], h.expected_episode(2, 5)[ACTION])
    assert len(json.loads((ds.root / "dataset.json").read_text())["sessions"]) == 2


def test_append_rejects_conflicts(tmp_path, h):
    h.write_episodes(tmp_path / "ds", [3])
    with pytest.raises(ValueError, match="'task'"):
        DatasetWriter(tmp_path / "ds", meta={"task": "other"})
    with pytest.raises(ValueError, match=f"key '{ACTION}'"):
        DatasetWriter(tmp_path / "ds", specs={ACTION: (np.float64, (3,)), OBS_STATE: (np.float32, (4,))})
    with pytest.raises(ValueError, match=f"key '{OBS_STATE}'"), DatasetWriter(tmp_path / "ds", fsync=False) as w:
        ep = w.begin_episode()
        obs, action, reward, flags = h.make_step(1, 0)
        ep.add_step({**obs, OBS_STATE: np.zeros(5, np.float32)}, action, reward, flags)
    assert len(Dataset(tmp_path / "ds")) == 1


def test_not_a_dataset_directory(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="not an rl100 dataset"):
        DatasetWriter(tmp_path / "junk")
    with pytest.raises(FileNotFoundError):
        Dataset(tmp_path / "junk")


def test_explicit_specs_and_cast(tmp_path):
    specs = {OBS_STATE: (np.float32, (2,)), ACTION: KeySpec(np.dtype(np.float32), (1,))}
    with DatasetWriter(tmp_path / "ds", specs=specs, cast=True, fsync=False) as w:
        assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["keys"][ACTION]["dtype"] == "<f4"
        ep = w.begin_episode()
        ep.add_step({OBS_STATE: np.array([1.0, 2.0])}, [3.0], 1, FLAG_DEMO)  # float64 / list / int reward: cast
        with pytest.raises(ValueError, match="dtype"):
            ep.add_step({OBS_STATE: np.array([1.0, 2.0])}, np.array([1 + 2j]), 1, FLAG_DEMO)  # complex: never
        ep.end(success=False, terminal=True)
    ds = Dataset(tmp_path / "ds")
    assert ds.episode(0)[OBS_STATE].dtype == np.float32
    assert ds.episode_info(0).terminal and not ds.episode_info(0).success
    assert ds.episode(0)[TERMINAL].tolist() == [True]


def test_strict_dtype_without_cast(tmp_path, h):
    with DatasetWriter(tmp_path / "ds", fsync=False) as w:
        ep = w.begin_episode()
        ep.add_step(*h.make_step(0, 0))
        obs, action, reward, flags = h.make_step(0, 1)
        with pytest.raises(ValueError, match=r"episode 0 step 1 key 'action': dtype float64"):
            ep.add_step(obs, action.astype(np.float64), reward, flags)
        ep.end(success=True)


def test_exception_inside_episode_aborts_it_and_keeps_prior(tmp_path, h):
    with pytest.raises(RuntimeError, match="boom"), DatasetWriter(tmp_path / "ds", fsync=False) as w:
        for e in range(2):
            ep = w.begin_episode()
            for t in range(3):
                ep.add_step(*h.make_step(e, t))
            ep.end(success=True)
        ep = w.begin_episode()
        ep.add_step(*h.make_step(2, 0))
        raise RuntimeError("boom")
    ds = Dataset(tmp_path / "ds")
    assert len(ds) == 2 and not ds.incomplete
    visible = sorted(p.name for p in ds.root.iterdir() if not p.name.startswith("."))
    assert visible == ["dataset.json", "episode_000000", "episode_000001"]


def test_abort_and_lifecycle_errors(tmp_path, h):
    with DatasetWriter(tmp_path / "ds", fsync=False) as w:
        ep = w.begin_episode()
        ep.add_step(*h.make_step(0, 0))
        with pytest.raises(RuntimeError, match="still open"):
            w.begin_episode()
        ep.abort("operator reset")
        ep.abort("twice is fine")
        with pytest.raises(RuntimeError, match="aborted"):
            ep.add_step(*h.make_step(0, 1))
        empty = w.begin_episode()
        with pytest.raises(ValueError, match="without any step"):
            empty.end(success=True)
        with w.begin_episode() as ep2:
            ep2.add_step(*h.make_step(0, 0))
            info = ep2.end(success=True)
        assert info.index == 0 and ep2.path.name == "episode_000000"
        with pytest.raises(RuntimeError, match="ended"):
            ep2.end(success=True)
        with pytest.warns(RuntimeWarning, match="discarded"):
            w.begin_episode().add_step(*h.make_step(1, 0))
            w.close()
        with pytest.raises(RuntimeError, match="closed"):
            w.begin_episode()
    ds = Dataset(tmp_path / "ds")
    assert len(ds) == 1 and not ds.incomplete


def test_meta_must_be_json(tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        DatasetWriter(tmp_path / "ds", meta={"bad": object()})
    with DatasetWriter(tmp_path / "ds2", fsync=False) as w:
        with pytest.raises(ValueError, match="JSON"):
            w.begin_episode(meta={"x": float("nan")})
        ep = w.begin_episode(meta={"seed": np.int64(3), "goal": np.array([1.0, 2.0])})
        ep.add_step({OBS_STATE: np.zeros(1, np.float32)}, np.zeros(1, np.float32), 0.0, FLAG_INTERVENTION)
        ep.end(success=True)
    assert Dataset(tmp_path / "ds2").episode_info(0).meta == {"seed": 3, "goal": [1.0, 2.0]}


def test_fsync_path(tmp_path, h):
    h.write_episodes(tmp_path / "ds", [3], fsync=True)
    Dataset(tmp_path / "ds").validate()
