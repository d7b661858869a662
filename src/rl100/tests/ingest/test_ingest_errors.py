"""rl100 ingest on corrupt, truncated and unfinished bags: the error names the bag and the problem,
and the episodes ingested before it are kept."""

from __future__ import annotations

import os

import pytest

from rl100.data import Dataset
from rl100.ingest import IngestError, ingest


def _mcap(bag):
    return next(bag.glob("*.mcap"))


def test_truncated_bag_fails_by_name_and_keeps_earlier_episodes(tmp_path, make_episode):
    bags = tmp_path / "bags"
    make_episode(bags, "a_good")
    bad = make_episode(bags, "b_truncated")
    make_episode(bags, "c_good")
    mcap = _mcap(bad)
    os.truncate(mcap, mcap.stat().st_size // 2)

    with pytest.raises(IngestError) as err:
        ingest([bags], tmp_path / "ds", fsync=False)
    assert err.value.bag == bad and str(err.value).startswith(f"{bad}: corrupt or truncated bag (")
    print(err.value)  # what an operator sees
    ds = Dataset(tmp_path / "ds")
    assert [i.meta["bag_episode_id"] for i in ds.infos] == ["a_good"]
    assert sorted(p.name for p in (tmp_path / "ds").iterdir() if p.name.startswith("episode_")) == [
        "episode_000000"
    ]  # no half-written episode left behind

    report = ingest([bags], tmp_path / "ds", skip_bad=True, fsync=False)
    assert [b for b, _ in report["ingested"]] == [str(bags / "c_good")]
    assert [b for b, _ in report["failed"]] == [str(bad)]
    assert len(Dataset(tmp_path / "ds")) == 2


def test_garbage_file_and_missing_sidecar_and_partial(tmp_path, make_episode):
    bag = make_episode(tmp_path, "garbage")
    _mcap(bag).write_bytes(b"not an mcap file at all" * 10)
    with pytest.raises(IngestError, match=f"^{bag}: "):
        ingest([bag], tmp_path / "ds1", fsync=False)

    bag = make_episode(tmp_path, "nosidecar")
    (bag / "episode.json").unlink()
    with pytest.raises(IngestError, match="no episode.json: not a recorder episode"):
        ingest([bag], tmp_path / "ds2", fsync=False)

    partial = tmp_path / "crashed.partial"
    partial.mkdir()
    with pytest.raises(IngestError, match=r"crashed.partial: unfinished episode \(.partial"):
        ingest([partial], tmp_path / "ds3", fsync=False)
