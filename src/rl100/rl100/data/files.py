"""File-level helpers of the dataset format: strict JSON, atomic replace, fsync, streamed NPY files."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rl100.data.format import DATASET_FILE, FORMAT_NAME, FORMAT_VERSION, KeySpec

_MAX_LENGTH_DIGITS = 20  # header space reserved for the time dimension
DEFAULT_CHUNK_BYTES = 4 << 20  # per key; an RGB 640x480 frame is 0.9 MiB
MAX_CHUNK_STEPS = 4096
LOCK_FILE = ".dataset.lock"  # flock()ed around read-modify-write of dataset.json


# ---------------------------------------------------------------------------------------------- json


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def to_json_text(data: Any) -> str:
    """Strict JSON (no NaN/Inf); numpy scalars/arrays and paths are converted. Raises ValueError otherwise."""
    try:
        return json.dumps(data, indent=2, sort_keys=True, allow_nan=False, default=_json_default) + "\n"
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not JSON serialisable: {exc}") from exc


def json_roundtrip(data: Any) -> Any:
    """The value as it will read back (tuples become lists, numpy scalars python numbers)."""
    return json.loads(to_json_text(data))


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json_atomic(path: Path, data: Any, *, fsync: bool = True) -> None:
    """Write to a sibling temp file and ``os.replace`` it: readers see the old or the new file, never half."""
    text = to_json_text(data)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if fsync:
        fsync_dir(path.parent)


@contextlib.contextmanager
def header_lock(root: Path) -> Iterator[None]:
    """Exclusive advisory lock (``flock``) serialising ``dataset.json`` updates between writer processes."""
    with open(Path(root) / LOCK_FILE, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def process_info() -> dict[str, Any]:
    """Who wrote something: host, pid, versions, command line."""
    from rl100 import __version__

    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "rl100": __version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "argv": list(sys.argv),
    }


# ---------------------------------------------------------------------------------------------- npy


def npy_header(spec: KeySpec, length: int | None) -> bytes:
    """NPY v1.0 header for ``(length, *spec.shape)``, padded to a size that does not depend on ``length``.

    ``length=None`` gives the placeholder written before the length is known; the real header
    later overwrites it in place, so rows can be streamed to the final file without a copy.
    """
    if spec.dtype.byteorder == ">" or (spec.dtype.byteorder == "=" and sys.byteorder == "big"):
        raise ValueError("big-endian dtypes are not supported")
    shape = (0 if length is None else int(length), *spec.shape)
    text = repr({"descr": np.lib.format.dtype_to_descr(spec.dtype), "fortran_order": False, "shape": shape})
    widest = repr({"descr": np.lib.format.dtype_to_descr(spec.dtype), "fortran_order": False, "shape": shape})
    widest = widest.replace(f"({shape[0]},", f"({'9' * _MAX_LENGTH_DIGITS},", 1)
    prefix = len(np.lib.format.magic(1, 0)) + 2  # magic + uint16 header length
    total = -(-(prefix + len(widest) + 1) // 64) * 64  # keep data 64-byte aligned like numpy does
    if total - prefix > 65535:
        raise ValueError(f"per-step shape {spec.shape} too large for an NPY v1.0 header")
    body = (text + " " * (total - prefix - len(text) - 1) + "\n").encode("latin1")
    return np.lib.format.magic(1, 0) + (total - prefix).to_bytes(2, "little") + body


def npy_header_size(spec: KeySpec) -> int:
    return len(npy_header(spec, None))


class NpyStream:
    """Rows of one key: a preallocated chunk, appended to the final ``.npy`` file whenever it fills up."""

    def __init__(self, path: Path, spec: KeySpec, chunk_bytes: int) -> None:
        self.path = path
        self.spec = spec
        capacity = chunk_bytes // spec.row_bytes if spec.row_bytes else MAX_CHUNK_STEPS
        self.buf = np.empty((max(1, min(MAX_CHUNK_STEPS, capacity)), *spec.shape), spec.dtype)  # (C, *shape)
        self.n_buf = 0
        self.n_written = 0
        self.file = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by finish()/close(); chunks are big already
        self._write(npy_header(spec, None))

    def _write(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view:  # unbuffered writes may be partial
            view = view[self.file.write(view) :]

    def append(self, value: np.ndarray) -> None:
        self.buf[self.n_buf] = value
        self.n_buf += 1
        if self.n_buf == len(self.buf):
            self.flush()

    def flush(self) -> None:
        if self.n_buf:
            if self.buf.size:  # zero-size rows have no bytes (and memoryview cannot cast them)
                self._write(self.buf[: self.n_buf].data)
            self.n_written += self.n_buf
            self.n_buf = 0

    def finish(self, fsync: bool) -> None:
        self.flush()
        self.file.seek(0)
        self._write(npy_header(self.spec, self.n_written))
        if fsync:
            os.fsync(self.file.fileno())
        self.file.close()

    def close(self) -> None:
        self.file.close()


def write_npy(path: Path, array: np.ndarray, *, fsync: bool) -> None:
    """Whole-array NPY writer with the same header layout as the streamed files."""
    array = np.ascontiguousarray(array)
    with open(path, "wb") as f:
        f.write(npy_header(KeySpec.of(array[0]), len(array)))
        f.write(array.tobytes())
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def read_dataset_header(root: Path) -> dict[str, Any]:
    """``dataset.json`` of ``root``, checked for format and version."""
    path = Path(root) / DATASET_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: not an rl100 dataset")
    header = read_json(path)
    if header.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: format {header.get('format')!r} is not {FORMAT_NAME!r}")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{path}: format version {version!r} is newer than supported ({FORMAT_VERSION})")
    header.setdefault("meta", {})
    header.setdefault("sessions", [])
    header.setdefault("keys", None)
    return header
