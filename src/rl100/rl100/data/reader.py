"""Reading a dataset: :class:`Dataset`, per-episode memmap views, incomplete-episode reports, validation.

Array legend: ``T`` episode length; every key reads as ``(T, *per_step_shape)``, memory-mapped
read-only (``np.load(mmap_mode="r")``), so a dataset larger than RAM can be trained on.
Episodes are addressed by *position* ``0 <= i < len(ds)`` in index order; the directory
index (``episode_000123`` -> 123) is ``ds.episode_info(i).index``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl100 import keys
from rl100.data.files import npy_header_size, read_dataset_header, read_json
from rl100.data.format import (
    EPISODE_FILE,
    TERMINAL,
    WRITER_FILE,
    EpisodeInfo,
    KeySpec,
    episode_dirname,
    key_filename,
    parse_episode_dirname,
    parse_incomplete_dirname,
    specs_from_json,
)

_SCAN_BYTES = 64 << 20  # rows read at a time by validate()


class DatasetError(ValueError):
    """A dataset on disk is inconsistent; the message names the episode(s) and key(s)."""


class IncompleteEpisodeWarning(UserWarning):
    """The dataset holds episode directories that were never finalised (crashed or still recording)."""


@dataclass(frozen=True)
class IncompleteEpisode:
    """An ``episode_<n>.incomplete-*`` directory: being recorded now, or left behind by a crash."""

    path: Path
    index: int  # provisional index
    started: str = ""
    host: str = ""
    pid: int | None = None
    steps_on_disk: int | None = None  # steps flushed so far (buffered ones are not counted)

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"invalid provisional index {self.index}")

    def writer_alive(self) -> bool | None:
        """Whether the recording process still runs (None when it cannot be told: other host, no record)."""
        if self.pid is None or self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class EpisodeView(Mapping[str, np.ndarray]):
    """Mapping key -> ``(T, *shape)`` read-only ``np.memmap``, opened lazily on first access."""

    def __init__(self, path: Path, info: EpisodeInfo, specs: Mapping[str, KeySpec]) -> None:
        self.path = path
        self.info = info
        self.specs = dict(specs)
        self._arrays: dict[str, np.ndarray] = {}

    @property
    def length(self) -> int:
        return self.info.length

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.specs:
            raise KeyError(key)
        arr = self._arrays.get(key)
        if arr is None:
            arr = np.load(self.path / key_filename(key), mmap_mode="r", allow_pickle=False)
            self._arrays[key] = arr
        return arr

    def __iter__(self) -> Iterator[str]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __repr__(self) -> str:
        return f"EpisodeView({self.path.name}, T={self.length}, keys={list(self.specs)})"


class Dataset:
    """A dataset root opened for reading (see :mod:`rl100.data.format` for the layout).

    ``max_open_episodes``: episodes whose memmaps stay open (LRU); bounds open mappings on big datasets.
    Opening warns (:class:`IncompleteEpisodeWarning`) when unfinished episode directories exist;
    they are never read, see :attr:`incomplete` and :meth:`clean_incomplete`.
    """

    def __init__(self, root: str | os.PathLike, *, max_open_episodes: int = 256) -> None:
        self.root = Path(root)
        if max_open_episodes < 1:
            raise ValueError(f"max_open_episodes must be >= 1, got {max_open_episodes}")
        self.max_open_episodes = max_open_episodes
        self.refresh()
        if self.incomplete:
            warnings.warn(
                f"{self.root}: {len(self.incomplete)} incomplete episode dir(s) (crashed or still recording) "
                "are ignored; see Dataset.incomplete / Dataset.clean_incomplete()",
                IncompleteEpisodeWarning,
                stacklevel=2,
            )

    def refresh(self) -> None:
        """Re-read ``dataset.json`` and the episode list (e.g. while a writer appends)."""
        self.header = read_dataset_header(self.root)
        self.meta: dict[str, Any] = self.header["meta"]
        self.specs: dict[str, KeySpec] = specs_from_json(self.header["keys"])
        infos, incomplete = [], []
        for entry in list(os.scandir(self.root)):
            if not entry.is_dir():
                continue
            index = parse_episode_dirname(entry.name)
            if index is not None:
                try:
                    infos.append(EpisodeInfo.from_json(index, read_json(Path(entry.path) / EPISODE_FILE)))
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    raise DatasetError(f"episode {index} ({entry.name}): unreadable {EPISODE_FILE}: {exc}") from exc
            elif (index := parse_incomplete_dirname(entry.name)) is not None:
                incomplete.append(self._incomplete(Path(entry.path), index))
        if infos and not self.specs:
            raise DatasetError(f"{self.root}: episodes present but dataset.json has no key specs")
        self._infos: list[EpisodeInfo] = sorted(infos, key=lambda i: i.index)
        self.incomplete: list[IncompleteEpisode] = sorted(incomplete, key=lambda i: i.index)
        self._cache: OrderedDict[int, EpisodeView] = OrderedDict()

    def _incomplete(self, path: Path, index: int) -> IncompleteEpisode:
        record: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):  # a crash may precede the record
            record = read_json(path / WRITER_FILE)
        writer = record.get("writer", {})
        steps = None
        action_file = path / key_filename(keys.ACTION)
        spec = self.specs.get(keys.ACTION)
        if spec is not None and action_file.exists() and spec.row_bytes:
            steps = max(0, (action_file.stat().st_size - npy_header_size(spec)) // spec.row_bytes)
        return IncompleteEpisode(
            path, index, record.get("started", ""), writer.get("host", ""), writer.get("pid"), steps
        )

    # ------------------------------------------------------------------------------------------ access

    def __len__(self) -> int:
        return len(self._infos)

    def __iter__(self) -> Iterator[EpisodeView]:
        return (self.episode(i) for i in range(len(self)))

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, episodes={len(self)}, steps={self.num_steps})"

    def _position(self, i: int) -> int:
        n = len(self._infos)
        if not -n <= i < n:
            raise IndexError(f"episode position {i} out of range for {n} episodes")
        return i % n

    @property
    def infos(self) -> list[EpisodeInfo]:
        return list(self._infos)

    @property
    def lengths(self) -> np.ndarray:
        """(N,) int64 episode lengths."""
        return np.array([info.length for info in self._infos], dtype=np.int64)

    @property
    def num_steps(self) -> int:
        return int(sum(info.length for info in self._infos))

    def episode_info(self, i: int) -> EpisodeInfo:
        return self._infos[self._position(i)]

    def episode_path(self, i: int) -> Path:
        return self.root / episode_dirname(self.episode_info(i).index)

    def episode(self, i: int) -> EpisodeView:
        """Mapping key -> ``(T, *shape)`` np.memmap of the ``i``-th episode (by position)."""
        pos = self._position(i)
        view = self._cache.get(pos)
        if view is None:
            view = EpisodeView(self.episode_path(pos), self._infos[pos], self.specs)
            self._cache[pos] = view
            if len(self._cache) > self.max_open_episodes:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(pos)
        return view

    # ------------------------------------------------------------------------------------------ selection

    def subset(self, positions: Sequence[int]) -> Dataset:
        """A view on the episodes at ``positions`` (same root; nothing is copied)."""
        view = object.__new__(Dataset)
        view.__dict__.update(self.__dict__)
        view._infos = [self._infos[self._position(int(i))] for i in positions]
        view._cache = OrderedDict()
        return view

    def filter(
        self,
        *,
        success: bool | None = None,
        flags_any: int = 0,
        flags_all: int = 0,
        flags_none: int = 0,
        where: Callable[[EpisodeInfo], bool] | None = None,
    ) -> Dataset:
        """Episodes with the given ``success``, at least one step with a bit of ``flags_any``, every step
        with all bits of ``flags_all``, no step with a bit of ``flags_none``, and ``where(info)`` true.

        E.g. ``filter(success=True, flags_all=FLAG_DEMO)``: successful pure demonstrations;
        ``filter(flags_any=FLAG_INTERVENTION)``: episodes where a human took over.
        """
        keep = []
        for pos, info in enumerate(self._infos):
            ok = success is None or info.success == success
            ok = ok and (not flags_any or bool(info.flags_any & flags_any))
            ok = ok and (info.flags_all & flags_all) == flags_all and not (info.flags_any & flags_none)
            if ok and (where is None or where(info)):
                keep.append(pos)
        return self.subset(keep)

    # ------------------------------------------------------------------------------------------ maintenance

    def clean_incomplete(self, *, force: bool = False) -> list[Path]:
        """Delete incomplete episode dirs whose writer is known dead (``force``: all of them); returns them."""
        removed = []
        for inc in self.incomplete:
            if force or inc.writer_alive() is False:
                shutil.rmtree(inc.path, ignore_errors=True)
                removed.append(inc.path)
        self.incomplete = [inc for inc in self.incomplete if inc.path not in removed]
        return removed

    def validate(self, *, check_values: bool = True, max_report: int = 50) -> None:
        """Check every episode: files, dtypes, shapes, lengths consistent across keys, done/terminal
        layout, flags summary and (``check_values``) NaN/Inf in float arrays.

        Raises :class:`DatasetError` listing the problems, each naming the episode and the key.
        """
        problems: list[str] = []
        for pos in range(len(self)):
            problems += _check_episode(self.episode_path(pos), self._infos[pos], self.specs, check_values)
            if len(problems) > max_report:
                break
        if problems:
            shown = "\n  ".join(problems[:max_report])
            raise DatasetError(f"{self.root}: {len(problems)} problem(s):\n  {shown}")


def _check_episode(path: Path, info: EpisodeInfo, specs: Mapping[str, KeySpec], check_values: bool) -> list[str]:
    where = f"episode {info.index} ({path.name})"
    problems = []
    arrays: dict[str, np.ndarray] = {}
    for name in sorted(os.listdir(path)):
        if name.endswith(".npy") and name[: -len(".npy")] not in specs:
            problems.append(f"{where} key {name[: -len('.npy')]!r}: file not in the dataset key specs")
    for key, spec in specs.items():
        try:
            arr = np.load(path / key_filename(key), mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            problems.append(f"{where} key {key!r}: unreadable ({exc})")
            continue
        expected = (info.length, *spec.shape)
        if arr.dtype != spec.dtype or arr.shape != expected:
            problems.append(f"{where} key {key!r}: {arr.dtype}{arr.shape} != expected {spec.dtype}{expected}")
            continue
        arrays[key] = arr
        if check_values and arr.dtype.kind == "f":
            rows = max(1, _SCAN_BYTES // max(spec.row_bytes, 1))
            for lo in range(0, len(arr), rows):
                bad = ~np.isfinite(arr[lo : lo + rows])
                if bad.any():
                    step = lo + int(np.argwhere(bad)[0][0])
                    problems.append(f"{where} key {key!r}: NaN/Inf, first at step {step}")
                    break
    last = np.arange(info.length) == info.length - 1
    if keys.DONE in arrays and not np.array_equal(arrays[keys.DONE], last):
        problems.append(f"{where} key {keys.DONE!r}: must be True exactly at the last step")
    if TERMINAL in arrays and not np.array_equal(arrays[TERMINAL], last & info.terminal):
        problems.append(f"{where} key {TERMINAL!r}: must be {info.terminal} at the last step only")
    if keys.FLAGS in arrays:
        flags = np.asarray(arrays[keys.FLAGS])
        if int(np.bitwise_or.reduce(flags)) != info.flags_any or int(np.bitwise_and.reduce(flags)) != info.flags_all:
            problems.append(f"{where} key {keys.FLAGS!r}: does not match the {EPISODE_FILE} flags summary")
    return problems
