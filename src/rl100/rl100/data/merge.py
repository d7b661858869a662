"""Merging datasets (e.g. each offline-RL round adds its rollouts to the demonstrations).

Episodes are copied (or hard-linked: finalised files are never modified) into the destination
with fresh indices, each one atomically, and keep their ``episode.json`` (meta, flags, success)
plus an ``origin`` record: source dataset, source index, and the source's own origin if any.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rl100 import keys
from rl100.data.files import write_json_atomic
from rl100.data.format import EPISODE_FILE, STEP_KEYS, EpisodeInfo, diff_specs, incomplete_dirname, key_filename
from rl100.data.reader import Dataset, EpisodeView
from rl100.data.writer import DatasetWriter


def copy_episode(
    writer: DatasetWriter, episode: EpisodeView, *, hardlink: bool = False, origin: dict[str, Any] | None = None
) -> EpisodeInfo:
    """Append a finalised episode of another dataset to ``writer``'s dataset (specs must match).

    ``hardlink``: link the array files instead of copying when on the same filesystem (falls back
    to a copy otherwise). The episode appears atomically, like a recorded one.
    """
    if writer._closed or writer._current is not None:
        raise RuntimeError("copy_episode needs an open writer with no episode being recorded")
    if writer._specs is None or diff_specs(writer._specs, episode.specs):
        problems = "; ".join(diff_specs(writer._specs or {}, episode.specs))
        raise ValueError(
            f"episode {episode.info.index} ({episode.path}): specs differ from the destination: {problems}"
        )
    index = writer._free_index()
    tmp = writer.root / incomplete_dirname(index, secrets.token_hex(4))
    tmp.mkdir()
    try:
        for key in writer._specs:
            src, dst = episode.path / key_filename(key), tmp / key_filename(key)
            if hardlink:
                try:
                    os.link(src, dst)
                    continue
                except OSError:
                    pass
            shutil.copyfile(src, dst)
            if writer.fsync:
                with open(dst, "rb") as f:
                    os.fsync(f.fileno())
        info = dataclasses.replace(episode.info, origin=origin)
        write_json_atomic(tmp / EPISODE_FILE, info.to_json(), fsync=writer.fsync)
        index = writer._commit(tmp, index)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    info = dataclasses.replace(info, index=index)
    writer.episodes.append(info)
    return info


def merge(
    sources: Sequence[str | os.PathLike | Dataset],
    dest: str | os.PathLike,
    *,
    meta: Mapping[str, Any] | None = None,
    hardlink: bool = False,
    fsync: bool = True,
) -> Dataset:
    """Copy every episode of ``sources`` (paths or, e.g. filtered, :class:`Dataset` views) into ``dest``.

    ``dest`` is created, or appended to when it exists with the same key specs. All sources must
    share key specs. ``meta`` (default: the union of the sources' meta, which must not conflict)
    becomes / is added to the destination's dataset meta. Returns the destination, reopened.
    """
    datasets = [s if isinstance(s, Dataset) else Dataset(s) for s in sources]
    dest = Path(dest)
    for ds in datasets:
        if dest.exists() and ds.root.resolve() == dest.resolve():
            raise ValueError(f"{ds.root}: a source cannot be the merge destination")
    with_specs = [ds for ds in datasets if ds.specs]
    for ds in with_specs[1:]:
        problems = diff_specs(with_specs[0].specs, ds.specs)
        if problems:
            raise ValueError(f"{ds.root} and {with_specs[0].root}: key specs differ: {'; '.join(problems)}")
    if meta is None:
        merged: dict[str, Any] = {}
        for ds in datasets:
            for k, v in ds.meta.items():
                if k in merged and merged[k] != v:
                    raise ValueError(f"sources disagree on dataset meta {k!r} ({merged[k]!r} vs {v!r}): pass meta=")
                merged[k] = v
        meta = merged
    specs = None
    if with_specs:
        specs = {k: v for k, v in with_specs[0].specs.items() if k not in STEP_KEYS or k == keys.ACTION}
    note = {"mode": "merge", "sources": [str(ds.root.resolve()) for ds in datasets]}
    with DatasetWriter(dest, meta=meta, specs=specs, fsync=fsync, note=note) as writer:
        for ds in datasets:
            source = str(ds.root.resolve())
            for i in range(len(ds)):
                info = ds.episode_info(i)
                origin = {"dataset": source, "episode": info.index, "origin": info.origin}
                copy_episode(writer, ds.episode(i), hardlink=hardlink, origin=origin)
    return Dataset(dest)
