"""On-disk dataset format: layout, names, key specs and episode summaries (file I/O: :mod:`rl100.data.files`).

Layout of a dataset root::

    root/
      dataset.json                  format version, creation info, user meta, key specs
      episode_000000/               one directory per *finalised* episode
        episode.json                length, success, flags summary, meta (task, seed, source, ...)
        action.npy                  (T, D_a)
        reward.npy                  (T,) float32
        flags.npy                   (T,) uint8 bit field (keys.FLAG_*)
        done.npy                    (T,) bool, True only at the last step (episode boundary)
        terminal.npy                (T,) bool, True only at the last step of a terminated episode
        observation.state.npy       (T, D_s)   ... one file per observation key, time-major
      episode_000001.incomplete-1a2b3c4d/   an episode being recorded (or left behind by a crash),
                                    with writer.json (host, pid, start time, meta)
      .dataset.lock                 flock()ed by writers while they update dataset.json

Only directories named exactly ``episode_<digits>`` are episodes. A writer records into an
``.incomplete-*`` directory and renames it into place once every file is complete and synced,
so a crash can never leave a half episode that looks complete.

Every ``.npy`` is a plain NPY v1.0 file (no pickle), written by streaming rows after a header
reserved up-front and rewritten with the final length at the end (see :func:`rl100.data.files.npy_header`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rl100 import keys

FORMAT_NAME = "rl100-dataset"
FORMAT_VERSION = 1
DATASET_FILE = "dataset.json"
EPISODE_FILE = "episode.json"
WRITER_FILE = "writer.json"  # inside an incomplete episode directory: who is recording it

TERMINAL = "terminal"  # () bool per step: the episode *terminated* (not truncated) after this step
STEP_KEYS = (keys.ACTION, keys.REWARD, keys.FLAGS, keys.DONE, TERMINAL)  # written by the writer itself
DERIVED_KEYS = (keys.DONE, TERMINAL)  # computed at end(), never passed by the caller

_EPISODE_RE = re.compile(r"episode_(\d{6,})")
_INCOMPLETE_RE = re.compile(r"episode_(\d{6,})\.incomplete-([0-9a-f]+)")
_KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_ALLOWED_KINDS = "biuf"  # bool, signed, unsigned, float; no object/str/structured (would need pickle or be ambiguous)


def episode_dirname(index: int) -> str:
    return f"episode_{index:06d}"


def incomplete_dirname(index: int, token: str) -> str:
    return f"{episode_dirname(index)}.incomplete-{token}"


def parse_episode_dirname(name: str) -> int | None:
    """``episode_000012`` -> 12; anything else -> None."""
    m = _EPISODE_RE.fullmatch(name)
    return int(m.group(1)) if m else None


def parse_incomplete_dirname(name: str) -> int | None:
    m = _INCOMPLETE_RE.fullmatch(name)
    return int(m.group(1)) if m else None


def key_filename(key: str) -> str:
    return f"{key}.npy"


def check_key_name(key: str) -> None:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key) or key.endswith(".json"):
        raise ValueError(f"invalid key name {key!r}: use letters, digits, '_', '.', '-' (it becomes a file name)")


@dataclass(frozen=True)
class KeySpec:
    """dtype and per-step shape of one key; the stored array is ``(T, *shape)`` of ``dtype``."""

    dtype: np.dtype
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        dtype = np.dtype(self.dtype)
        if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise ValueError(f"unsupported dtype {dtype!r}: only bool, int, uint and float arrays are stored")
        shape = tuple(self.shape)
        if not all(isinstance(s, (int, np.integer)) and int(s) >= 0 for s in shape):
            raise ValueError(f"invalid per-step shape {self.shape!r}: expected non-negative ints")
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "shape", tuple(int(s) for s in shape))

    @classmethod
    def of(cls, value: Any) -> KeySpec:
        """Spec of one step's value (array-like)."""
        arr = np.asarray(value)
        return cls(arr.dtype, arr.shape)

    @classmethod
    def coerce(cls, value: KeySpec | tuple | Mapping) -> KeySpec:
        """Accept a KeySpec, a ``(dtype, shape)`` pair or a ``{"dtype", "shape"}`` mapping."""
        if isinstance(value, KeySpec):
            return value
        if isinstance(value, Mapping):
            return cls(np.dtype(value["dtype"]), tuple(value["shape"]))
        dtype, shape = value
        return cls(np.dtype(dtype), tuple(shape))

    @property
    def row_bytes(self) -> int:
        return int(self.dtype.itemsize * math.prod(self.shape))

    def to_json(self) -> dict[str, Any]:
        return {"dtype": self.dtype.str, "shape": list(self.shape)}


FIXED_SPECS = {
    keys.REWARD: KeySpec(np.dtype(np.float32), ()),
    keys.FLAGS: KeySpec(np.dtype(np.uint8), ()),
    keys.DONE: KeySpec(np.dtype(np.bool_), ()),
    TERMINAL: KeySpec(np.dtype(np.bool_), ()),
}


def specs_to_json(specs: Mapping[str, KeySpec]) -> dict[str, Any]:
    return {k: specs[k].to_json() for k in sorted(specs)}


def specs_from_json(data: Mapping[str, Any] | None) -> dict[str, KeySpec]:
    return {k: KeySpec.coerce(v) for k, v in (data or {}).items()}


def complete_specs(specs: Mapping[str, KeySpec | tuple | Mapping]) -> dict[str, KeySpec]:
    """Validate user-given specs (observation keys + action) and add the fixed per-step keys."""
    out = {k: KeySpec.coerce(v) for k, v in specs.items()}
    if keys.ACTION not in out:
        raise ValueError(f"specs must include {keys.ACTION!r}")
    for k, spec in out.items():
        check_key_name(k)
        if k in FIXED_SPECS and spec != FIXED_SPECS[k]:
            raise ValueError(f"key {k!r} is fixed to {FIXED_SPECS[k]}, got {spec}")
    out.update(FIXED_SPECS)
    return out


def diff_specs(a: Mapping[str, KeySpec], b: Mapping[str, KeySpec]) -> list[str]:
    """Human-readable differences between two spec sets (empty list when equal)."""
    problems = [f"key {k!r} only in the first" for k in sorted(set(a) - set(b))]
    problems += [f"key {k!r} only in the second" for k in sorted(set(b) - set(a))]
    problems += [f"key {k!r}: {a[k]} != {b[k]}" for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    return problems


def flag_names() -> dict[int, str]:
    """Bit value -> name, from the ``FLAG_*`` constants of :mod:`rl100.keys` (``bit<n>`` for the others)."""
    names = {1 << b: f"bit{b}" for b in range(8)}
    for name, value in vars(keys).items():
        if name.startswith("FLAG_") and isinstance(value, int):
            names[value] = name[len("FLAG_") :].lower()
    return names


@dataclass(frozen=True)
class EpisodeInfo:
    """Summary of one finalised episode, stored as ``episode.json`` (``index`` comes from the directory name)."""

    index: int
    length: int
    success: bool
    terminal: bool
    reward_sum: float
    flags_any: int  # OR of the per-step flags
    flags_all: int  # AND of the per-step flags
    flag_counts: dict[str, int] = field(default_factory=dict)  # steps with each bit set, by name (flag_names())
    meta: dict[str, Any] = field(default_factory=dict)  # user meta: task, seed, source, ...
    created: str = ""
    origin: dict[str, Any] | None = None  # set by merge(): where the episode was copied from

    def __post_init__(self) -> None:
        if self.index < 0 or self.length <= 0:
            raise ValueError(f"episode {self.index}: invalid index/length ({self.index}, {self.length})")
        if not (0 <= self.flags_any <= 255 and 0 <= self.flags_all <= 255) or self.flags_all & ~self.flags_any:
            raise ValueError(f"episode {self.index}: inconsistent flags any={self.flags_any} all={self.flags_all}")
        if not isinstance(self.meta, dict):
            raise ValueError(f"episode {self.index}: meta must be a dict")

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "length": self.length,
            "success": self.success,
            "terminal": self.terminal,
            "reward_sum": self.reward_sum,
            "flags": {"any": self.flags_any, "all": self.flags_all, "counts": self.flag_counts},
            "meta": self.meta,
            "created": self.created,
            "origin": self.origin,
        }

    @classmethod
    def from_json(cls, index: int, data: Mapping[str, Any]) -> EpisodeInfo:
        flags = data["flags"]
        return cls(
            index=index,
            length=int(data["length"]),
            success=bool(data["success"]),
            terminal=bool(data["terminal"]),
            reward_sum=float(data["reward_sum"]),
            flags_any=int(flags["any"]),
            flags_all=int(flags["all"]),
            flag_counts={str(k): int(v) for k, v in flags.get("counts", {}).items()},
            meta=dict(data.get("meta") or {}),
            created=str(data.get("created", "")),
            origin=data.get("origin"),
        )
