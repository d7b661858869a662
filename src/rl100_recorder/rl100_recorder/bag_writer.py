"""One rosbag2 MCAP bag per episode, finalised atomically (pure Python: rosbags, no rclpy).

Layout of a record directory::

    <dir>/<episode_id>/             a finished episode = a rosbag2 bag (``ros2 bag info`` reads it)
      metadata.yaml                 rosbag2 metadata (custom_data: rl100.* keys)
      <episode_id>_0.mcap           MCAP, message definitions embedded (ros2msg schemas)
      episode.json                  label, task, meta, steps, interventions, stamps, topics
    <dir>/<episode_id>.partial/     the episode being recorded, or left behind by a crash:
      recording.json                episode id, task, meta, start time, pid (written at begin)
      <episode_id>.partial.mcap     MCAP without summary/footer until closed

Crash behaviour (what a SIGKILL leaves): finished episodes are untouched, because an episode
only gets its final name by a rename after its bag is closed and ``episode.json`` is synced.
The open episode stays ``<id>.partial``. rosbags' MCAP writer keeps the current chunk
(~1 MiB) in memory; :meth:`EpisodeBagWriter.flush` (called every ``flush_interval_s`` by
:meth:`write`) closes that chunk and flushes the file, so a killed recording is readable up
to the last flush with a streaming MCAP reader (:func:`read_partial`); the rosbags Reader
and ``ros2 bag`` refuse it (no metadata.yaml, no MCAP footer).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import shutil
import time
from typing import Any, Iterator

from rl100.data.files import fsync_dir, write_json_atomic
from rl100_recorder.msg_types import build_typestore, ensure_type
from rosbags.rosbag2 import StoragePlugin, Writer

LABELS = ('unknown', 'success', 'failure')  # index = rl100_msgs/EpisodeEvent LABEL_*
EPISODE_FILE = 'episode.json'
RECORDING_FILE = 'recording.json'
PARTIAL_SUFFIX = '.partial'
FORMAT = 'rl100-episode-bag'
INTERVENTION_TOPIC = '/rl100/intervention'


class BagWriterError(RuntimeError):
    """Misuse or I/O failure of the episode writer (message says what and where)."""


class DiskBudgetError(BagWriterError):
    """Refusal to start an episode: too little free disk, or the directory is full."""


def new_episode_id(index: int) -> str:
    """``20261126T101500_0007`` style identifier (local time + per-recorder counter)."""
    return f'{time.strftime("%Y%m%dT%H%M%S")}_{index:04d}'


def list_episodes(root: str | os.PathLike) -> list[Path]:
    """Finished episode directories in ``root`` (those with an ``episode.json``), sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and not p.name.endswith(PARTIAL_SUFFIX)
                  and (p / EPISODE_FILE).is_file())


class EpisodeBagWriter:
    """Writes episodes, one at a time, as rosbag2 MCAP bags under ``root``.

    ``typestore``: rosbags typestore with the definitions to embed (default: the distro's
    standard types + rl100_msgs from the ament index). ``min_free_disk_gb``: :meth:`begin`
    refuses to start below this much free space. ``max_episodes``: refuse to start when
    ``root`` already holds this many finished episodes (0 = no limit); move them away to
    rotate. ``flush_interval_s``: at most this much recorded time is lost by a crash.
    ``fsync``: sync files and directories before an episode is renamed into place.
    ``bag_version``: rosbag2 metadata version; 8 (Iron's) keeps the QoS profiles a YAML string,
    which Humble's ``ros2 bag`` still parses (version 9, Jazzy's, makes them a list: "bad
    conversion" on Humble); Jazzy reads both.
    """

    def __init__(self, root: str | os.PathLike, *, typestore: Any = None,
                 min_free_disk_gb: float = 1.0, max_episodes: int = 0,
                 flush_interval_s: float = 1.0, fsync: bool = True,
                 intervention_topic: str = INTERVENTION_TOPIC, bag_version: int = 8) -> None:
        self.root = Path(root)
        self.typestore = typestore if typestore is not None else build_typestore()
        self.min_free_disk_gb = float(min_free_disk_gb)
        self.max_episodes = int(max_episodes)
        self.flush_interval_s = float(flush_interval_s)
        self.fsync = bool(fsync)
        self.intervention_topic = intervention_topic
        self.bag_version = bag_version
        self.episode_id: str | None = None
        self.path: Path | None = None  # the .partial directory while an episode is open
        self.bytes_written = 0
        self.messages_written = 0
        self._counter = 0
        self._writer: Writer | None = None
        self._connections: dict[tuple[str, str], Any] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._record: dict[str, Any] = {}
        self._steps = 0
        self._interventions = 0
        self._first_ns: int | None = None
        self._last_ns: int | None = None
        self._last_flush = 0.0

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    @property
    def task(self) -> str:
        """Task of the open episode ('' when none is open)."""
        return self._record.get('task', '') if self._writer is not None else ''

    def free_disk_gb(self) -> float:
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free / 1e9

    def check_budget(self) -> None:
        """Raise DiskBudgetError when a new episode must not start (free disk, episode count)."""
        free = self.free_disk_gb()
        if free < self.min_free_disk_gb:
            raise DiskBudgetError(
                f'only {free:.2f} GB free in {self.root} (< min_free_disk_gb '
                f'{self.min_free_disk_gb:g}): free space or move episodes away')
        if self.max_episodes > 0:
            count = len(list_episodes(self.root))
            if count >= self.max_episodes:
                raise DiskBudgetError(
                    f'{self.root} already holds {count} episodes (max_episodes '
                    f'{self.max_episodes}): move them away or use another record_dir')

    def begin(self, episode_id: str | None = None, task: str = '',
              meta: dict[str, Any] | None = None) -> str:
        """Open a new episode bag and return its id (generated when ``episode_id`` is None)."""
        if self._writer is not None:
            raise BagWriterError(f'episode {self.episode_id} is still open: end() or abort() it')
        self.check_budget()
        if episode_id is None:
            self._counter += 1
            episode_id = new_episode_id(self._counter)
        if not episode_id or '/' in episode_id or episode_id.startswith('.'):
            raise BagWriterError(f'invalid episode id {episode_id!r}')
        final = self.root / episode_id
        partial = self.root / f'{episode_id}{PARTIAL_SUFFIX}'
        if final.exists() or partial.exists():
            raise BagWriterError(f'episode {episode_id!r} already exists in {self.root}')
        meta = json.loads(json.dumps(dict(meta or {})))  # JSON-able, copied
        writer = Writer(partial, version=self.bag_version, storage_plugin=StoragePlugin.MCAP)
        for key, value in (('episode_id', episode_id), ('task', task),
                           ('meta', json.dumps(meta, sort_keys=True))):
            writer.set_custom_data(f'rl100.{key}', value)
        writer.open()
        self._record = {'format': FORMAT, 'episode_id': episode_id, 'task': task, 'meta': meta,
                        'started': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'pid': os.getpid()}
        write_json_atomic(partial / RECORDING_FILE, self._record, fsync=False)
        self._writer, self.episode_id, self.path = writer, episode_id, partial
        self._connections, self._counts = {}, {}
        self._steps = self._interventions = 0
        self._first_ns = self._last_ns = None
        self.bytes_written = self.messages_written = 0
        self._last_flush = time.monotonic()
        return episode_id

    def write(self, topic: str, msgtype: str, data: Any, stamp_ns: int) -> None:
        """Record one message (``stamp_ns``: receive/log time).

        ``data`` is CDR bytes (e.g. from a raw subscription) or a message object of this
        writer's typestore (serialised here).
        """
        if self._writer is None:
            raise BagWriterError('no episode is open: begin() first')
        key = (topic, msgtype)
        conn = self._connections.get(key)
        if conn is None:
            ensure_type(self.typestore, msgtype)
            conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
            self._connections[key] = conn
            self._counts[key] = 0
        if not isinstance(data, (bytes, bytearray, memoryview)):
            data = self.typestore.serialize_cdr(data, msgtype)
        stamp_ns = int(stamp_ns)
        self._writer.write(conn, stamp_ns, data)
        self._counts[key] += 1
        self.messages_written += 1
        self.bytes_written += len(data)
        self._first_ns = stamp_ns if self._first_ns is None else min(self._first_ns, stamp_ns)
        self._last_ns = stamp_ns if self._last_ns is None else max(self._last_ns, stamp_ns)
        if topic == self.intervention_topic:
            self._steps += 1
            msg = self.typestore.deserialize_cdr(bytes(data), msgtype)
            self._interventions += bool(getattr(msg, 'active', False))
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Close the pending MCAP chunk and flush the file (readable after a crash up to here)."""
        self._last_flush = time.monotonic()
        storage = getattr(self._writer, 'storage', None)
        chunk = getattr(storage, 'chunk', None)
        if chunk is None:  # another rosbags storage layout: nothing we can force
            return
        if chunk.bio.tell():
            storage.close_chunk()
        storage.bio.flush()

    def end(self, label: str | int = 'unknown', note: str = '') -> Path:
        """Close the bag, write ``episode.json`` and rename the episode into place; its path."""
        if self._writer is None:
            raise BagWriterError('no episode is open')
        if isinstance(label, int):
            if not 0 <= label < len(LABELS):
                raise BagWriterError(f'label {label} is not one of EpisodeEvent LABEL_* 0..2')
            label = LABELS[label]
        if label not in LABELS:
            raise BagWriterError(f'label {label!r} is not one of {LABELS}')
        writer, partial, episode_id = self._writer, self.path, self.episode_id
        assert partial is not None and episode_id is not None
        writer.close()
        self._writer = None
        mcap_old = partial / f'{partial.name}.mcap'
        mcap_new = partial / f'{episode_id}_0.mcap'
        os.rename(mcap_old, mcap_new)  # the name ros2 bag record uses; metadata.yaml follows
        meta_yaml = partial / 'metadata.yaml'
        meta_yaml.write_text(meta_yaml.read_text(encoding='utf-8').replace(
            mcap_old.name, mcap_new.name), encoding='utf-8')
        sidecar = {
            **self._record,
            'label': label,
            'success': label == 'success',
            'note': note,
            'steps': self._steps,
            'interventions': self._interventions,
            'start_ns': self._first_ns,
            'end_ns': self._last_ns,
            'ended': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
            'bag': mcap_new.name,
            'topics': {t: {'type': m, 'count': self._counts[(t, m)]}
                       for (t, m) in sorted(self._counts)},
        }
        sidecar.pop('pid', None)
        write_json_atomic(partial / EPISODE_FILE, sidecar, fsync=self.fsync)
        (partial / RECORDING_FILE).unlink()
        if self.fsync:
            for name in (mcap_new.name, 'metadata.yaml'):
                fd = os.open(partial / name, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            fsync_dir(partial)
        final = self.root / episode_id
        os.rename(partial, final)
        if self.fsync:
            fsync_dir(self.root)
        self.episode_id = self.path = None
        return final

    def abort(self) -> str | None:
        """Discard the open episode (its ``.partial`` directory is deleted); its id, if any."""
        writer, partial, episode_id = self._writer, self.path, self.episode_id
        self._writer = None
        self.episode_id = self.path = None
        if writer is not None:
            try:
                writer.abort()
            finally:
                if partial is not None:
                    shutil.rmtree(partial, ignore_errors=True)
        return episode_id

    def status(self) -> dict[str, Any]:
        """Counters for diagnostics."""
        return {'episode': self.episode_id or '', 'messages': self.messages_written,
                'bytes': self.bytes_written, 'steps': self._steps,
                'interventions': self._interventions}


def read_partial(partial_dir: str | os.PathLike) -> Iterator[tuple[str, str, int, bytes]]:
    """Messages readable in a crashed ``.partial`` episode: (topic, msgtype, log_time_ns, cdr).

    In file order, stopping silently at the truncated end (needs the ``mcap`` package).
    """
    from mcap.exceptions import McapError
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    files = sorted(Path(partial_dir).glob('*.mcap'))
    if not files:
        raise BagWriterError(f'no .mcap file in {partial_dir}')
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    with open(files[0], 'rb') as f:
        records = StreamReader(f).records
        while True:
            try:
                record = next(records)
            except (StopIteration, McapError, EOFError, ValueError, OSError):
                return  # clean end or the truncation point
            if isinstance(record, Schema):
                schemas[record.id] = record.name
            elif isinstance(record, Channel):
                channels[record.id] = (record.topic, schemas.get(record.schema_id, ''))
            elif isinstance(record, Message) and record.channel_id in channels:
                topic, msgtype = channels[record.channel_id]
                yield topic, msgtype, record.log_time, bytes(record.data)
