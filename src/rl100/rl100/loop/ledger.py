"""The loop's ledger: one JSON file recording every step of every round, rewritten atomically after each change.

Layout of ``<run>/ledger.json``::

    {"format": "rl100.loop_ledger", "version": 1,
     "config": {... LoopConfig.to_dict() ...},
     "rounds": [ {"steps": {"<step>": {"status": "started" | "done", "attempts": n,
                                        "outputs": {name: path}, "metrics": {...}, "wall_s": s,
                                        "started": time, "finished": time}}}, ... ]}

A step is marked ``started`` (its attempt counted and written to disk) before it runs and ``done`` with its
outputs after they are all written. A step found ``started`` on a rerun was interrupted: its directory is
deleted and it runs again; a ``done`` step is never rerun. Paths inside the run directory are stored relative
to it, so a run directory can be moved. Writes go through :func:`rl100.data.files.write_json_atomic`
(temporary file, fsync, rename, fsync of the directory): a crash leaves the old ledger or the new one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rl100.data.files import json_roundtrip, read_json, write_json_atomic

LEDGER_FILE = "ledger.json"
LEDGER_FORMAT = "rl100.loop_ledger"
LEDGER_VERSION = 1

# keys of the ledger's JSON
FORMAT, VERSION, CONFIG, ROUNDS, STEPS = "format", "version", "config", "rounds", "steps"
STATUS, ATTEMPTS, OUTPUTS, METRICS, WALL_S, STARTED, FINISHED = (
    "status", "attempts", "outputs", "metrics", "wall_s", "started", "finished")
STATUS_STARTED, STATUS_DONE = "started", "done"

RESUMABLE_FIELDS = ("rounds", "out", "threads", "fsync", "online_iterations", "online")
"""config fields a rerun may change: more rounds (or an online phase) continue a finished run; a moved run directory,
thread counts and fsync do not change what a step computes. What the run already did must still fit the new rounds
and online phase: :class:`rl100.loop.run.Loop` checks that against ``changed``."""


class LedgerError(ValueError):
    """The ledger does not belong to this run (another config) or is malformed."""


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (the ledger is strict JSON; a NaN J is "unknown")."""
    if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class Ledger:
    """``run_dir/ledger.json``: created for ``config``, or reopened when it was written for the same config.

    ``comparable`` maps a config to what must match on a reopen (default: the config itself); the loop passes
    :func:`rl100.loop.config.effective_config`, so a field added since the ledger was written counts as its default
    and the message names the differing setting (``il.lr``) rather than the whole section."""

    def __init__(self, run_dir: str | Path, config: dict[str, Any], *, fsync: bool = True,
                 comparable: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LEDGER_FILE
        self.fsync = fsync
        config = json_roundtrip(config)
        self.changed: dict[str, tuple[Any, Any]] = {}
        """resumable fields this reopening changed: name -> (ledger's value, now)"""
        if self.path.exists():
            data = read_json(self.path)
            if data.get(FORMAT) != LEDGER_FORMAT or data.get(VERSION) != LEDGER_VERSION:
                raise LedgerError(f"{self.path}: not a {LEDGER_FORMAT} v{LEDGER_VERSION} file")
            old = data.get(CONFIG) or {}
            view = comparable or (lambda c: c)
            was, now = view(old), view(config)
            diff = sorted(k for k in set(was) | set(now)
                          if k.split(".")[0] not in RESUMABLE_FIELDS and was.get(k) != now.get(k))
            if diff:
                raise LedgerError(f"{self.path} was written for another configuration; differing fields: "
                                  + "; ".join(f"{k}: ledger {was.get(k)!r} vs now {now.get(k)!r}" for k in diff)
                                  + " (use a new --out, or the same settings)")
            self.changed = {k: (old.get(k), config.get(k)) for k in RESUMABLE_FIELDS if old.get(k) != config.get(k)}
            data[CONFIG] = config
            self.data = data
        else:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.data = {FORMAT: LEDGER_FORMAT, VERSION: LEDGER_VERSION, CONFIG: config, ROUNDS: []}
            self.save()

    # ------------------------------------------------------------------------------------------ queries
    @property
    def rounds(self) -> list[dict[str, Any]]:
        return self.data[ROUNDS]

    def entry(self, rnd: int, step: str) -> dict[str, Any] | None:
        if rnd >= len(self.rounds):
            return None
        return self.rounds[rnd][STEPS].get(step)

    def done(self, rnd: int, step: str) -> bool:
        e = self.entry(rnd, step)
        return e is not None and e[STATUS] == STATUS_DONE

    def outputs(self, rnd: int, step: str) -> dict[str, Path]:
        """Absolute output paths of a completed step; LedgerError when the step is not done."""
        e = self.entry(rnd, step)
        if e is None or e[STATUS] != STATUS_DONE:
            raise LedgerError(f"round {rnd} step {step!r} is not done")
        out = {k: self.resolve(v) for k, v in e[OUTPUTS].items()}
        gone = [str(p) for p in out.values() if not p.exists()]
        if gone:
            raise LedgerError(f"{self.path}: round {rnd} step {step!r} is recorded done but its outputs are gone: "
                              f"{gone}")
        return out

    def metrics(self, rnd: int, step: str) -> dict[str, Any]:
        e = self.entry(rnd, step)
        return dict(e[METRICS]) if e is not None and e[STATUS] == STATUS_DONE else {}

    def resolve(self, stored: str) -> Path:
        p = Path(stored)
        return p if p.is_absolute() else self.run_dir / p

    def relative(self, path: str | Path) -> str:
        p = Path(path).resolve()
        try:
            return str(p.relative_to(self.run_dir.resolve()))
        except ValueError:
            return str(p)

    # ------------------------------------------------------------------------------------------ updates
    def start(self, rnd: int, step: str) -> int:
        """Mark ``step`` of round ``rnd`` started (written to disk before it runs); returns its attempt number."""
        while len(self.rounds) <= rnd:
            self.rounds.append({STEPS: {}})
        e = self.rounds[rnd][STEPS].get(step) or {ATTEMPTS: 0}
        if e.get(STATUS) == STATUS_DONE:
            raise LedgerError(f"round {rnd} step {step!r} is already done")
        e.update({STATUS: STATUS_STARTED, ATTEMPTS: int(e[ATTEMPTS]) + 1, STARTED: _now()})
        self.rounds[rnd][STEPS][step] = e
        self.save()
        return e[ATTEMPTS]

    def finish(self, rnd: int, step: str, outputs: dict[str, str | Path], metrics: dict[str, Any],
               wall_s: float) -> None:
        """Mark a started step done with its outputs (each must exist) and JSON-safe metrics."""
        e = self.entry(rnd, step)
        if e is None or e[STATUS] != STATUS_STARTED:
            raise LedgerError(f"round {rnd} step {step!r} was not started")
        missing = [str(p) for p in outputs.values() if not Path(p).exists()]
        if missing:
            raise LedgerError(f"round {rnd} step {step!r}: outputs missing: {missing}")
        e.update({STATUS: STATUS_DONE, OUTPUTS: {k: self.relative(v) for k, v in outputs.items()},
                  METRICS: json_roundtrip(finite_json(metrics)), WALL_S: round(float(wall_s), 3), FINISHED: _now()})
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.data, fsync=self.fsync)
