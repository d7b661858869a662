"""Stream watchdog of the camera node: stall detection, pipeline restarts with backoff, give up.

No ROS, no camera, and the clock is injected, so every timing rule is unit-tested. The
capture thread reports what happens (``frame()``, ``failure()``, ``restarted()``,
``finished()``) and asks ``poll()`` what to do next:

- no frame for ``stall_timeout`` s while streaming (or none within ``startup_timeout`` s of a
  start) -> the stream is **stalled** (WARN); a read that raises stalls it at once;
- ``restart_backoff`` s later -> ``Action.RESTART`` (stop + start the pipeline); while restarts
  have not brought the stream back the status is ERROR. A restart that fails, or after which no
  frame comes within ``startup_timeout`` s, doubles the wait for the next one (up to
  ``max_backoff``);
- frames again -> streaming; the restart budget is refilled after ``stable_after`` s of
  uninterrupted streaming (a stream that keeps stalling right after each restart gives up);
- ``max_restarts`` restarts without a stable stream, and still stalled -> ``Action.GIVE_UP``:
  the node exits non-zero and its supervisor starts a fresh process.

A recording that ends (``finished()``) is not a stall.
"""

from __future__ import annotations

from dataclasses import dataclass
import enum
import threading
import time
from typing import Callable


class Phase(enum.Enum):
    STARTING = 'starting'  # (first) start done, no frame yet
    STREAMING = 'streaming'
    STALLED = 'stalled'  # no frames; a restart is due at next_restart
    RESTARTING = 'restarting'  # restarted, waiting for the first frame
    FINISHED = 'recording finished'
    FAILED = 'stream lost'  # out of restarts: give up


class Action(enum.Enum):
    NONE = 'none'
    RESTART = 'restart'
    GIVE_UP = 'give_up'


class Level(enum.IntEnum):
    """Same values as diagnostic_msgs/DiagnosticStatus levels."""

    OK = 0
    WARN = 1
    ERROR = 2


@dataclass(frozen=True)
class WatchdogConfig:
    stall_timeout: float = 1.0  # s without a frame while streaming
    startup_timeout: float = 5.0  # s from a (re)start to the first frame
    restart_backoff: float = 0.5  # s from the stall to the first restart; doubles per restart
    max_backoff: float = 8.0  # s, the longest wait between restarts
    max_restarts: int = 5  # restarts without a stable stream before giving up
    stable_after: float = 10.0  # s of streaming that refill the restart budget

    def __post_init__(self):
        for name in ('stall_timeout', 'startup_timeout', 'stable_after'):
            if not getattr(self, name) > 0.0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        if not 0.0 <= self.restart_backoff <= self.max_backoff:
            raise ValueError(f'need 0 <= restart_backoff <= max_backoff, got '
                             f'{self.restart_backoff} and {self.max_backoff}')
        if self.max_restarts < 0:
            raise ValueError(f'max_restarts must be >= 0, got {self.max_restarts}')

    @property
    def poll_interval(self) -> float:
        """How long a blocking read may wait so that the timing rules hold (s)."""
        return min(0.1, self.stall_timeout / 4.0)

    def backoff(self, restarts: int) -> float:
        """Wait before the next restart after ``restarts`` restarts without a stable stream."""
        return min(self.restart_backoff * 2.0 ** restarts, self.max_backoff)


class StreamWatchdog:
    """The stall / restart state machine. Thread-safe; the clock returns seconds."""

    def __init__(self, config: WatchdogConfig | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config or WatchdogConfig()
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self.phase = Phase.STARTING
        self.reason = ''  # why the stream stalled / the last restart failed
        self.stalls = 0  # stalls detected
        self.restarts = 0  # restarts attempted
        self.failed_restarts = 0  # restarts that raised or brought no frame
        self.attempts = 0  # restarts since the stream was last stable
        self._deadline = now + self.config.startup_timeout  # next frame due by then
        self._next_restart = 0.0
        self._streaming_since = now

    # --- what happened ---------------------------------------------------------------------
    def frame(self) -> None:
        """A frame arrived."""
        with self._lock:
            now = self._clock()
            if self.phase in (Phase.FINISHED, Phase.FAILED):
                return
            if self.phase is not Phase.STREAMING:
                self.phase = Phase.STREAMING
                self._streaming_since = now
            self._deadline = now + self.config.stall_timeout
            self._refill(now)

    def failure(self, reason: str) -> None:
        """A read raised (device gone, USB error): stalled now."""
        with self._lock:
            now = self._clock()
            if self.phase in (Phase.STARTING, Phase.STREAMING):
                self._stall(now, reason)
            elif self.phase is Phase.RESTARTING:
                self._attempt_failed(now, reason)

    def restarted(self, ok: bool, reason: str = '') -> None:
        """The restart that ``poll()`` asked for is done: ``ok`` False if start() raised."""
        with self._lock:
            now = self._clock()
            self.restarts += 1
            self.attempts += 1
            if ok:
                self.phase = Phase.RESTARTING
                self._deadline = now + self.config.startup_timeout
            else:
                self._attempt_failed(now, f'restart failed: {reason}')

    def finished(self) -> None:
        """The recording ended: no more frames are expected, and that is fine."""
        with self._lock:
            if self.phase is not Phase.FAILED:
                self.phase = Phase.FINISHED

    # --- what to do ------------------------------------------------------------------------
    def poll(self) -> Action:
        with self._lock:
            now = self._clock()
            phase = self.phase
            if phase is Phase.FAILED:
                return Action.GIVE_UP
            if phase is Phase.FINISHED:
                return Action.NONE
            if phase is Phase.STREAMING:
                self._refill(now)
            if phase in (Phase.STARTING, Phase.STREAMING) and now > self._deadline:
                what = 'no first frame' if phase is Phase.STARTING else 'no frame'
                limit = (self.config.startup_timeout if phase is Phase.STARTING
                         else self.config.stall_timeout)
                self._stall(now, f'{what} for {limit:g} s')
            elif phase is Phase.RESTARTING and now > self._deadline:
                self._attempt_failed(now, 'no frame within '
                                     f'{self.config.startup_timeout:g} s of the restart')
            if self.phase is Phase.FAILED:
                return Action.GIVE_UP
            if self.phase is Phase.STALLED and now >= self._next_restart:
                return Action.RESTART
            return Action.NONE

    def status(self) -> tuple:
        """(Level, message, counters) for the node's diagnostics."""
        with self._lock:
            cfg = self.config
            counters = {'stalls': self.stalls, 'restarts': self.restarts,
                        'failed_restarts': self.failed_restarts}
            phase = self.phase
            if phase in (Phase.STARTING, Phase.STREAMING, Phase.FINISHED):
                return Level.OK, phase.value, counters
            if phase is Phase.FAILED:
                return Level.ERROR, (f'stream lost after {self.attempts} restarts: '
                                     f'{self.reason}'), counters
            if self.attempts == 0:  # stalled, not restarted yet
                return Level.WARN, f'stalled: {self.reason}', counters
            return Level.ERROR, (f'stalled: {self.reason}; restart {self.attempts}/'
                                 f'{cfg.max_restarts}'), counters

    # --- internals (lock held) ---------------------------------------------------------------
    def _stall(self, now: float, reason: str) -> None:
        self.stalls += 1
        self.reason = reason
        self._enter_stalled(now)

    def _attempt_failed(self, now: float, reason: str) -> None:
        self.failed_restarts += 1
        self.reason = reason
        self._enter_stalled(now)

    def _enter_stalled(self, now: float) -> None:
        if self.attempts >= self.config.max_restarts:
            self.phase = Phase.FAILED
            return
        self.phase = Phase.STALLED
        self._next_restart = now + self.config.backoff(self.attempts)

    def _refill(self, now: float) -> None:
        if self.attempts and now - self._streaming_since >= self.config.stable_after:
            self.attempts = 0
