"""The trainer's dataset format: demonstrations, sim rollouts and ingested rosbag2 episodes.

Write with :class:`DatasetWriter` (one ``episode_<n>/`` directory of time-major ``.npy`` files per
episode, renamed into place atomically), read with :class:`Dataset` (memory-mapped), combine with
:func:`merge`, cut training windows with :class:`SequenceSampler` (and, with torch,
:class:`SequenceDataset`), and get normaliser statistics with :func:`compute_stats`.
See :mod:`rl100.data.format` for the on-disk layout. Imports neither torch nor rclpy.
"""

from __future__ import annotations

from typing import Any

from rl100.data.format import FORMAT_VERSION, TERMINAL, EpisodeInfo, KeySpec
from rl100.data.merge import copy_episode, merge
from rl100.data.reader import Dataset, DatasetError, EpisodeView, IncompleteEpisode, IncompleteEpisodeWarning
from rl100.data.sampler import EPISODE_INDEX, STEP_INDEX, VALID, SequenceSampler
from rl100.data.stats import KeyStats, compute_stats
from rl100.data.writer import DatasetWriter, EpisodeWriter

# SequenceDataset (torch) is left out of __all__ so that ``from rl100.data import *`` stays torch-free
__all__ = [
    "EPISODE_INDEX",
    "FORMAT_VERSION",
    "STEP_INDEX",
    "TERMINAL",
    "VALID",
    "Dataset",
    "DatasetError",
    "DatasetWriter",
    "EpisodeInfo",
    "EpisodeView",
    "EpisodeWriter",
    "IncompleteEpisode",
    "IncompleteEpisodeWarning",
    "KeySpec",
    "KeyStats",
    "SequenceSampler",
    "compute_stats",
    "copy_episode",
    "merge",
]


def __getattr__(name: str) -> Any:
    if name == "SequenceDataset":  # needs torch: imported on first use only
        from rl100.data.torch_dataset import SequenceDataset

        return SequenceDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
