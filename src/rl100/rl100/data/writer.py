"""Recording episodes into a dataset: :class:`DatasetWriter` and :class:`EpisodeWriter`.

Usage (the contract the collectors rely on)::

    with DatasetWriter(root, meta={"task": "lift"}) as w:
        ep = w.begin_episode(meta={"seed": 3, "source": "scripted"})
        for ...:
            ep.add_step(obs, action, reward, flags)   # obs: {key: (...)}, action: (D_a,), reward: float, flags: int
        ep.end(success=True)

Shapes: every key is stored time-major as ``(T, *per_step_shape)``; per-step shapes and dtypes
are fixed by the first step ever recorded (or by ``specs=``) and every later step is checked.

Streaming: each key has a preallocated chunk of about ``chunk_bytes`` that is appended to the
key's final ``.npy`` file when full. The NPY header is reserved up-front and rewritten in place
with the real length at :meth:`EpisodeWriter.end`, so a long image episode never lives in memory
and finishing it costs no copy (the alternative, a raw file converted at the end, reads and
writes every byte twice). The episode directory only gets its final name, by an atomic rename,
once all files and ``episode.json`` are synced.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import operator
import os
import secrets
import shutil
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rl100 import keys
from rl100.data.files import (
    DEFAULT_CHUNK_BYTES,
    LOCK_FILE,
    NpyStream,
    fsync_dir,
    header_lock,
    json_roundtrip,
    process_info,
    read_dataset_header,
    write_json_atomic,
    write_npy,
)
from rl100.data.format import (
    DATASET_FILE,
    DERIVED_KEYS,
    EPISODE_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    STEP_KEYS,
    TERMINAL,
    WRITER_FILE,
    EpisodeInfo,
    KeySpec,
    check_key_name,
    complete_specs,
    diff_specs,
    episode_dirname,
    flag_names,
    incomplete_dirname,
    key_filename,
    parse_episode_dirname,
    parse_incomplete_dirname,
    specs_from_json,
    specs_to_json,
)

log = logging.getLogger(__name__)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class EpisodeWriter:
    """One episode being recorded. Obtain it from :meth:`DatasetWriter.begin_episode`.

    ``index`` is provisional until :meth:`end` (concurrent writers may claim it first; the
    episode then takes the next free index). ``num_steps`` counts the accepted steps.
    """

    def __init__(self, writer: DatasetWriter, index: int, meta: dict[str, Any]) -> None:
        self._writer = writer
        self.index = index
        self.meta = meta
        self.path = writer.root / incomplete_dirname(index, secrets.token_hex(4))
        self.path.mkdir()
        record = {"started": _now(), "writer": process_info(), "meta": meta}
        write_json_atomic(self.path / WRITER_FILE, record, fsync=False)
        self.num_steps = 0
        self.state = "open"  # open -> ended | aborted
        self.info: EpisodeInfo | None = None
        self._streams: dict[str, NpyStream] | None = None
        self._reward_sum = 0.0
        self._flags_any = 0
        self._flags_all = 0xFF
        self._bit_counts = [0] * 8

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: Any) -> None:
        if self.state == "open":
            if exc_type is None:
                warnings.warn(f"episode {self.index} left without end(): discarded", RuntimeWarning, stacklevel=2)
            self.abort(f"exception: {exc!r}" if exc_type else "left without end()")

    def _error(self, key: str | None, message: str) -> ValueError:
        where = f"episode {self.index} step {self.num_steps}" + (f" key {key!r}" if key is not None else "")
        return ValueError(f"{where}: {message}")

    def _check_open(self) -> None:
        if self.state != "open":
            raise RuntimeError(f"episode {self.index} is {self.state}")

    def _check_array(self, key: str, value: Any, spec: KeySpec) -> np.ndarray:
        arr = np.asarray(value)
        if arr.dtype != spec.dtype:
            castable = arr.dtype.kind in "biuf" and np.can_cast(arr.dtype, spec.dtype, "same_kind")
            if not (self._writer.cast and castable):
                hint = "" if self._writer.cast else " (DatasetWriter(cast=True) converts same-kind dtypes)"
                raise self._error(key, f"dtype {arr.dtype} != dataset dtype {spec.dtype}{hint}")
            arr = arr.astype(spec.dtype)
        if arr.shape != spec.shape:
            raise self._error(key, f"shape {arr.shape} != dataset per-step shape {spec.shape}")
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(arr)
            if bad.any():
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                raise self._error(key, f"{int(bad.sum())} NaN/Inf value(s), first at {first}: {arr[first]}")
        return arr

    def _validate(self, obs: Mapping[str, Any], action: Any, reward: Any, flags: Any) -> dict[str, np.ndarray]:
        """All checks before anything is buffered: a rejected step leaves the episode unchanged."""
        if not isinstance(obs, Mapping):
            raise self._error(None, f"obs must be a mapping key -> array, got {type(obs).__name__}")
        for key in obs:
            if key in STEP_KEYS:
                raise self._error(key, "reserved key: action/reward/flags are arguments, done/terminal are derived")
        specs = self._writer._specs
        if specs is None:
            specs = self._writer._fix_specs(obs, action, self._error)
        obs_keys = [k for k in specs if k not in STEP_KEYS]
        missing = sorted(set(obs_keys) - set(obs))
        if missing:
            raise self._error(missing[0], f"missing (missing keys: {missing})")
        extra = sorted(set(obs) - set(obs_keys))
        if extra:
            raise self._error(extra[0], f"not a dataset key (dataset observation keys: {sorted(obs_keys)})")
        values = {k: self._check_array(k, obs[k], specs[k]) for k in obs_keys}
        values[keys.ACTION] = self._check_array(keys.ACTION, action, specs[keys.ACTION])
        r = np.asarray(reward)
        if r.shape != () or r.dtype.kind not in "biuf" or not np.isfinite(r):
            raise self._error(keys.REWARD, f"reward must be a finite scalar, got {reward!r}")
        values[keys.REWARD] = r.astype(np.float32)
        try:
            f = operator.index(flags)
        except TypeError:
            raise self._error(keys.FLAGS, f"flags must be an int bit field, got {flags!r}") from None
        if isinstance(flags, bool) or not 0 <= f <= 255:
            raise self._error(keys.FLAGS, f"flags must be an int in [0, 255], got {flags!r}")
        values[keys.FLAGS] = np.uint8(f)
        return values

    def add_step(self, obs: Mapping[str, Any], action: Any, reward: float, flags: int) -> None:
        """Record one step: ``obs`` {key: per-step array}, ``action`` (D_a,), ``reward`` scalar, ``flags`` FLAG_* bits.

        Raises ValueError naming the episode, step and key on a missing/unexpected key, a dtype or
        shape mismatch, NaN/Inf in a float array, or an invalid reward/flags; the step is then not recorded.
        """
        self._check_open()
        values = self._validate(obs, action, reward, flags)
        if self._streams is None:
            specs = self._writer._specs
            assert specs is not None
            self._streams = {
                k: NpyStream(self.path / key_filename(k), specs[k], self._writer.chunk_bytes)
                for k in specs
                if k not in DERIVED_KEYS
            }
        for k, v in values.items():
            self._streams[k].append(v)
        self.num_steps += 1
        self._reward_sum += float(values[keys.REWARD])
        f = int(values[keys.FLAGS])
        self._flags_any |= f
        self._flags_all &= f
        for bit in range(8):
            self._bit_counts[bit] += (f >> bit) & 1

    def flush(self) -> None:
        """Write the buffered steps to disk now (done automatically whenever a chunk fills up)."""
        self._check_open()
        for stream in (self._streams or {}).values():
            stream.flush()

    def end(self, success: bool, *, terminal: bool | None = None) -> EpisodeInfo:
        """Finalise the episode and move it into place atomically; returns its summary.

        ``terminal`` (default: ``success``) marks whether the last step ended the MDP (no bootstrap
        past it) or the episode was truncated (timeout, operator stop). An episode without steps
        is discarded and raises ValueError.
        """
        self._check_open()
        if self.num_steps == 0:
            self.abort("no steps")
            raise ValueError(f"episode {self.index}: end() without any step; the episode was discarded")
        terminal = bool(success) if terminal is None else bool(terminal)
        fsync = self._writer.fsync
        names = flag_names()
        try:
            assert self._streams is not None
            for stream in self._streams.values():
                stream.finish(fsync)
            last = np.zeros(self.num_steps, dtype=bool)
            last[-1] = True
            write_npy(self.path / key_filename(keys.DONE), last, fsync=fsync)
            write_npy(self.path / key_filename(TERMINAL), last & terminal, fsync=fsync)
            info = EpisodeInfo(
                index=self.index,
                length=self.num_steps,
                success=bool(success),
                terminal=terminal,
                reward_sum=self._reward_sum,
                flags_any=self._flags_any,
                flags_all=self._flags_all,
                flag_counts={names[1 << b]: n for b, n in enumerate(self._bit_counts) if n},
                meta=self.meta,
                created=_now(),
            )
            write_json_atomic(self.path / EPISODE_FILE, info.to_json(), fsync=fsync)
            (self.path / WRITER_FILE).unlink()
            self.index = self._writer._commit(self.path, self.index)
        except BaseException:
            self._discard()
            self.state = "aborted"
            raise
        self.path = self._writer.root / episode_dirname(self.index)
        self.info = dataclasses.replace(info, index=self.index)
        self.state = "ended"
        self._writer._episode_closed(self)
        return self.info

    def abort(self, reason: str = "") -> None:
        """Discard the episode (nothing is kept on disk). A no-op on an already aborted episode."""
        if self.state == "aborted":
            return
        self._check_open()
        self._discard()
        self.state = "aborted"
        log.info("episode %d aborted after %d steps: %s", self.index, self.num_steps, reason or "no reason given")
        self._writer._episode_closed(self)

    def _discard(self) -> None:
        for stream in (self._streams or {}).values():
            stream.close()
        shutil.rmtree(self.path, ignore_errors=True)


class DatasetWriter:
    """Creates a dataset at ``root`` or appends to the one there (its key specs and meta must agree).

    ``meta``: dataset-level JSON meta (task, robot, action space...); on append, new entries are
    added and a conflicting value raises ValueError. ``specs``: optional {key: KeySpec | (dtype, shape)}
    for the observation keys and ``action``; otherwise the first recorded step fixes them.
    ``cast``: convert same-kind dtypes (float64 -> float32) instead of rejecting them.
    ``fsync``: sync files and directories before an episode is renamed into place (crash-safe
    against power loss too; turn off for scratch data). ``note``: JSON dict recorded in the
    ``dataset.json`` session log (e.g. which tool appended, from which sources).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        meta: Mapping[str, Any] | None = None,
        *,
        specs: Mapping[str, Any] | None = None,
        cast: bool = False,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        fsync: bool = True,
        note: Mapping[str, Any] | None = None,
    ) -> None:
        self.root = Path(root)
        self.cast = bool(cast)
        self.chunk_bytes = int(chunk_bytes)
        self.fsync = bool(fsync)
        if self.chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        meta = json_roundtrip(dict(meta or {}))
        given = complete_specs(specs) if specs is not None else None
        header_path = self.root / DATASET_FILE
        if not header_path.exists() and self.root.exists() and set(os.listdir(self.root)) - {LOCK_FILE}:
            raise ValueError(f"{self.root} is a non-empty directory without {DATASET_FILE}: not an rl100 dataset")
        self.root.mkdir(parents=True, exist_ok=True)
        with header_lock(self.root):  # read-modify-write of dataset.json, safe against concurrent writers
            if header_path.exists():
                header = read_dataset_header(self.root)
                for k, v in meta.items():
                    if k in header["meta"] and header["meta"][k] != v:
                        raise ValueError(f"dataset meta {k!r}: existing {header['meta'][k]!r} != given {v!r}")
                header["meta"].update(meta)
                stored = specs_from_json(header["keys"]) or None
                if given is not None and stored is not None and diff_specs(stored, given):
                    raise ValueError(f"specs differ from the dataset's: {'; '.join(diff_specs(stored, given))}")
                self._specs = stored or given
            else:
                header = {
                    "format": FORMAT_NAME,
                    "format_version": FORMAT_VERSION,
                    "created": {"time": _now(), **process_info()},
                    "meta": meta,
                    "keys": None,
                    "sessions": [],
                }
                self._specs = given
            header["keys"] = specs_to_json(self._specs) if self._specs is not None else None
            session = {"time": _now(), "host": process_info()["host"], **json_roundtrip(dict(note or {}))}
            header["sessions"].append(session)
            write_json_atomic(header_path, header, fsync=self.fsync)
        self.meta: dict[str, Any] = header["meta"]
        self.episodes: list[EpisodeInfo] = []  # finalised by this writer
        self._current: EpisodeWriter | None = None
        self._closed = False
        self._next_index = 0

    @property
    def specs(self) -> dict[str, KeySpec] | None:
        return None if self._specs is None else dict(self._specs)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: Any) -> None:
        if self._current is not None and exc_type is not None:
            self._current.abort(f"exception: {exc!r}")
        self.close()

    def begin_episode(self, meta: Mapping[str, Any] | None = None) -> EpisodeWriter:
        """Start recording an episode (one at a time per writer). ``meta``: JSON dict (task, seed, source...)."""
        if self._closed:
            raise RuntimeError("DatasetWriter is closed")
        if self._current is not None:
            raise RuntimeError(f"episode {self._current.index} is still open: end() or abort() it first")
        self._current = EpisodeWriter(self, self._free_index(), json_roundtrip(dict(meta or {})))
        return self._current

    def close(self) -> None:
        """Discard (with a warning) an episode still open, then refuse further episodes."""
        if self._current is not None:
            warnings.warn(
                f"DatasetWriter closed with episode {self._current.index} open: discarded", RuntimeWarning, stacklevel=2
            )
            self._current.abort("writer closed")
        self._closed = True

    def _episode_closed(self, episode: EpisodeWriter) -> None:
        if episode.info is not None:
            self.episodes.append(episode.info)
        if self._current is episode:
            self._current = None

    def _free_index(self) -> int:
        used = [-1]
        for entry in list(os.scandir(self.root)):
            idx = parse_episode_dirname(entry.name)
            idx = parse_incomplete_dirname(entry.name) if idx is None else idx
            if idx is not None:
                used.append(idx)
        return max(max(used) + 1, self._next_index)

    def _commit(self, tmp: Path, index: int) -> int:
        """Rename ``tmp`` to the first free ``episode_<n>`` from ``index`` on; rename never replaces a finished one."""
        while True:
            try:
                os.rename(tmp, self.root / episode_dirname(index))
                break
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                index += 1
        if self.fsync:
            fsync_dir(self.root)
        self._next_index = index + 1
        return index

    def _fix_specs(self, obs: Mapping[str, Any], action: Any, error: Any) -> dict[str, KeySpec]:
        """Fix the key specs from the first step ever recorded and store them in ``dataset.json``."""
        specs: dict[str, KeySpec] = {}
        for key, value in [*obs.items(), (keys.ACTION, action)]:
            try:
                check_key_name(key)
                specs[key] = KeySpec.of(value)
            except ValueError as exc:
                raise error(key, str(exc)) from None
        specs = complete_specs(specs)
        with header_lock(self.root):
            header = read_dataset_header(self.root)
            stored = specs_from_json(header["keys"])
            if stored and diff_specs(stored, specs):  # another writer fixed them meanwhile
                raise error(None, f"step specs differ from the dataset's: {'; '.join(diff_specs(stored, specs))}")
            header["keys"] = specs_to_json(specs)
            write_json_atomic(self.root / DATASET_FILE, header, fsync=self.fsync)
        self._specs = specs
        return specs
