"""Crash safety: an episode without end() is never listed, is reported as incomplete and can be cleaned."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import rl100
from rl100.data import Dataset, DatasetWriter, IncompleteEpisodeWarning
from rl100.keys import ACTION

CRASHING_COLLECTOR = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from rl100.data import DatasetWriter
    w = DatasetWriter(sys.argv[1], meta={"task": "crash"}, chunk_bytes=4)
    for e in range(3):
        ep = w.begin_episode(meta={"seed": e})
        for t in range(6):
            obs = {"observation.state": np.array([e, t], np.float32)}
            ep.add_step(obs, np.array([t], np.float32), 0.0, 2)
        if e < 2:
            ep.end(success=True)
    os._exit(3)  # hard crash mid-episode: no end(), no close(), no cleanup handlers
    """
)


def run_crashing_collector(root: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(rl100.__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", CRASHING_COLLECTOR, str(root)], env=env, timeout=60)
    assert proc.returncode == 3


def test_hard_crash_leaves_previous_episodes_intact(tmp_path):
    root = tmp_path / "ds"
    run_crashing_collector(root)
    with pytest.warns(IncompleteEpisodeWarning, match="1 incomplete"):
        ds = Dataset(root)
    assert len(ds) == 2
    for e in range(2):
        np.testing.assert_array_equal(ds.episode(e)["observation.state"][:, 0], [e] * 6)
    ds.validate()
    (inc,) = ds.incomplete
    assert inc.index == 2 and inc.path.name.startswith("episode_000002.incomplete-")
    assert inc.steps_on_disk == 6  # chunk_bytes=4: every step was flushed
    assert inc.writer_alive() is False  # the collector process is gone
    # a new writer resumes after the crash without touching or reusing the leftover
    with DatasetWriter(root, fsync=False) as w:
        ep = w.begin_episode()
        ep.add_step({"observation.state": np.zeros(2, np.float32)}, np.zeros(1, np.float32), 1.0, 2)
        assert ep.end(success=False).index == 3
    with pytest.warns(IncompleteEpisodeWarning):
        ds = Dataset(root)
    assert [i.index for i in ds.infos] == [0, 1, 3]
    assert ds.clean_incomplete() == [inc.path]
    assert not inc.path.exists() and not ds.incomplete
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Dataset(root)  # no warning any more


def test_unfinished_episode_in_process(tmp_path, h):
    root = tmp_path / "ds"
    w = DatasetWriter(root, fsync=False)
    for e in range(2):
        ep = w.begin_episode()
        for t in range(4):
            ep.add_step(*h.make_step(e, t))
        ep.end(success=True)
    ep = w.begin_episode()
    for t in range(3):
        ep.add_step(*h.make_step(2, t))
    ep.flush()
    # the "crash": end() is never called
    with pytest.warns(IncompleteEpisodeWarning):
        ds = Dataset(root)
    assert len(ds) == 2 and ds.num_steps == 8
    (inc,) = ds.incomplete
    assert inc.steps_on_disk == 3 and inc.pid == os.getpid()
    assert inc.writer_alive() is True
    assert ds.clean_incomplete() == []  # a live writer's episode is not deleted
    assert ds.clean_incomplete(force=True) == [inc.path]
    for e in range(2):
        np.testing.assert_array_equal(ds.episode(e)[ACTION], h.expected_episode(e, 4)[ACTION])
    ep.abort("test over")  # closes the files of the deleted directory
    w.close()


def test_finished_episode_appears_only_after_end(tmp_path, h):
    root = tmp_path / "ds"
    with DatasetWriter(root, fsync=False) as w:
        ep = w.begin_episode()
        ep.add_step(*h.make_step(0, 0))
        assert not (root / "episode_000000").exists()
        ep.end(success=True)
        assert (root / "episode_000000" / "episode.json").exists()
        assert not list(root.glob("*.incomplete-*"))


def test_index_collision_with_concurrent_writer(tmp_path, h):
    """Two writers on one root: the second to finish takes the next free index instead of clobbering."""
    root = tmp_path / "ds"
    a = DatasetWriter(root, fsync=False)
    b = DatasetWriter(root, fsync=False)
    ep_a, ep_b = a.begin_episode(), b.begin_episode()
    assert ep_a.index == 0 and ep_b.index == 1  # provisional indices see each other's temp dirs
    for t in range(2):
        ep_a.add_step(*h.make_step(0, t))
        ep_b.add_step(*h.make_step(1, t))
    ep_a.end(success=True)
    taken = root / "episode_000001"  # a third writer finishes index 1 first
    taken.mkdir()
    (taken / "marker").write_text("taken")
    info_b = ep_b.end(success=False)
    assert info_b.index == 2 and ep_b.path.name == "episode_000002"
    assert (taken / "marker").read_text() == "taken"
    a.close()
    b.close()
