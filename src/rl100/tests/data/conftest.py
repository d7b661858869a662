"""Shared helpers for the rl100.data tests: small deterministic episodes.

Exposed as fixtures (``h`` namespace, ``small_dataset`` factory) rather than imported, so the tests
work under any pytest import mode.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rl100.data import Dataset, DatasetWriter
from rl100.keys import FLAG_DEMO, FLAG_INTERVENTION, FLAG_ROLLOUT, OBS_RGB, OBS_STATE

STATE_DIM = 4
ACTION_DIM = 3
IMAGE_SHAPE = (4, 5, 3)


def make_step(episode: int, t: int) -> tuple[dict[str, np.ndarray], np.ndarray, float, int]:
    """Deterministic step ``t`` of episode ``episode``: values encode (episode, t) so reads can be checked."""
    state = np.array([episode, t, episode * 100 + t, -t], dtype=np.float32)  # (STATE_DIM,)
    rgb = np.full(IMAGE_SHAPE, (episode * 10 + t) % 256, dtype=np.uint8)  # (H, W, 3)
    action = np.array([episode, t, 0.5 * t], dtype=np.float32)  # (ACTION_DIM,)
    flags = FLAG_ROLLOUT | (FLAG_INTERVENTION if t % 3 == 1 else 0) if episode % 2 else FLAG_DEMO
    return {OBS_STATE: state, OBS_RGB: rgb}, action, float(t) * 0.25, flags


def expected_episode(episode: int, length: int) -> dict[str, np.ndarray]:
    steps = [make_step(episode, t) for t in range(length)]
    return {
        OBS_STATE: np.stack([s[0][OBS_STATE] for s in steps]),
        OBS_RGB: np.stack([s[0][OBS_RGB] for s in steps]),
        "action": np.stack([s[1] for s in steps]),
        "reward": np.array([s[2] for s in steps], dtype=np.float32),
        "flags": np.array([s[3] for s in steps], dtype=np.uint8),
    }


def write_episodes(
    root: Path, lengths: list[int], *, first: int = 0, meta: dict | None = None, **writer_kwargs
) -> list[bool]:
    """Episodes ``first, first + 1, ...`` with the given lengths; even ones succeed. Returns successes."""
    successes = []
    writer_kwargs.setdefault("fsync", False)
    with DatasetWriter(root, meta=meta if meta is not None else {"task": "unit"}, **writer_kwargs) as w:
        for k, length in enumerate(lengths):
            e = first + k
            ep = w.begin_episode(meta={"seed": e, "source": "test"})
            for t in range(length):
                ep.add_step(*make_step(e, t))
            ep.end(success=e % 2 == 0)
            successes.append(e % 2 == 0)
    return successes


@pytest.fixture
def small_dataset(tmp_path: Path) -> Callable[..., Dataset]:
    def build(lengths: list[int] = [5, 3, 8], name: str = "ds", **kwargs) -> Dataset:  # noqa: B006
        write_episodes(tmp_path / name, lengths, **kwargs)
        return Dataset(tmp_path / name)

    return build


@pytest.fixture
def h() -> SimpleNamespace:
    return SimpleNamespace(
        make_step=make_step,
        expected_episode=expected_episode,
        write_episodes=write_episodes,
        STATE_DIM=STATE_DIM,
        ACTION_DIM=ACTION_DIM,
        IMAGE_SHAPE=IMAGE_SHAPE,
    )
