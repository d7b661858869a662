"""Evaluation episodes through the running stack: a state machine with no ROS in it.

One episode goes through these phases (:class:`Phase`), each one call to the stack:

    HOLD_FOR_RESET  SetMode HOLD: the robot ignores the policy while the scene restarts
    RESET           /rl100/sim/reset: the simulated task restarts with the next seed (before
                    the first episode, ``first_seed`` sets that seed on the sim robot)
    WAIT_RESET      poll /rl100/sim/success until it reports the reset
    CHECK_CAMERA    (``check_camera`` only) /rl100/check_camera: the camera_check node checks
                    the scene camera against the robot, at home and still, and corrects the
                    cloud's calibration if it moved (its ``correct``); a refused check is
                    recorded with the episode, which goes on
    START           StartEpisode: the recorder opens a bag (and the policy node restarts its
                    observation history on the EpisodeEvent START)
    AUTONOMOUS      SetMode AUTONOMOUS: the policy drives the robot through the safety node
    RUN             poll /rl100/sim/success until the task succeeds or its time limit passes
                    (simulated time, counted from AUTONOMOUS)
    HOLD            SetMode HOLD
    END             EndEpisode labelled success or failure: the bag is finalised

Before the first episode the runner waits until the stack is ready (``Stack.wait_ready``: over
ROS, the recorder has subscribed to what it records and the policy node publishes actions), and
again before an episode that follows one without policy actions (a killed policy node respawns
and its new publisher takes a moment to be matched: the next episode is not run blind). The
stack is anything with the methods of :class:`Stack` (``run_episodes.RosStack`` over ROS, a
fake in the unit tests); time goes through ``sleep`` / ``monotonic`` callables so tests need no
wall clock. A failure raises :class:`EpisodeError` naming the episode, the phase and the
problem; the open episode is then aborted (its bag discarded) and the robot put on HOLD.
With ``expect_model`` set, an episode the policy node drove with any other model (it respawned
with its start-up model after a LoadPolicy swap, say) is such a failure too.
The figures of a run (success rate, cycle time, control rate, latency) are made from the
results by :mod:`rl100_bringup.episode_summary`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import enum
import json
import time
from typing import Callable, Protocol


class StackError(RuntimeError):
    """A call to the stack failed: a service missing, silent, or refusing (message says which)."""


class EpisodeError(RuntimeError):
    """An episode could not run; the message names the episode, the phase and the cause."""


class CancelledError(EpisodeError):
    """The run was stopped from outside (Ctrl-C, a node of the graph died)."""


class Phase(enum.Enum):
    HOLD_FOR_RESET = 'hold for reset'
    RESET = 'reset'
    WAIT_RESET = 'wait for reset'
    CHECK_CAMERA = 'check camera'
    START = 'start episode'
    AUTONOMOUS = 'autonomous'
    RUN = 'run'
    HOLD = 'hold'
    END = 'end episode'
    DONE = 'done'


@dataclass(frozen=True)
class SimStatus:
    """What ``/rl100/sim/success`` reports (its JSON message)."""

    success: bool  # the task's success detector, now
    seed: int  # seed of the current episode
    time: float  # s, simulated time
    episode_time: float  # s, simulated time since the last reset
    success_time: float | None  # episode_time of the first successful tick, None before
    time_limit: float  # s, the task's own episode length
    resets: int | None = None  # resets applied since the sim robot started (None: not reported)
    takeover: dict | None = None  # scripted operator's takeover {'step', 'reason'}, None before
    lockstep_timeouts: int | None = None  # ticks stepped on a held target since start-up

    KEYS = ('success', 'seed', 'time', 'episode_time', 'success_time', 'time_limit')

    @classmethod
    def parse(cls, message: str) -> 'SimStatus':
        try:
            data = json.loads(message)
        except ValueError:
            raise StackError(f'sim robot status is not JSON: {message!r}') from None
        missing = [k for k in cls.KEYS if k not in data]
        if missing:
            raise StackError(f'sim robot status lacks {missing} (got {sorted(data)}): is the '
                             'rl100_sim package built from this source?')
        st = data['success_time']
        return cls(success=bool(data['success']), seed=int(data['seed']),
                   time=float(data['time']), episode_time=float(data['episode_time']),
                   success_time=None if st is None else float(st),
                   time_limit=float(data['time_limit']),
                   resets=None if data.get('resets') is None else int(data['resets']),
                   takeover=_takeover(data.get('takeover')),
                   lockstep_timeouts=_count(data.get('lockstep_timeouts')))


def _count(value) -> int | None:
    return None if value is None else int(value)


def _takeover(value) -> dict | None:
    """The status's ``takeover``: None, or ``{'step': int, 'reason': str}``."""
    if value is None:
        return None
    try:
        return {'step': int(value['step']), 'reason': str(value['reason'])}
    except (KeyError, TypeError, ValueError):
        raise StackError(f'sim robot status has a malformed takeover {value!r} '
                         "(wants {'step': int, 'reason': str} or null)") from None


@dataclass(frozen=True)
class PolicySample:
    """One ActionChunk as the policy node published it."""

    stamp: float  # s, simulated: the newest observation the chunk was computed from
    latency: float  # s, inference latency the policy node reports (its last prediction)
    period: float  # s, the policy's control period
    model_id: str = ''  # the model that computed it (ActionChunk.model_id)


class Stack(Protocol):
    """The calls the runner makes; each raises StackError naming the problem."""

    def wait_ready(self) -> None:
        """Before the first episode: the recorder listens and the policy acts."""

    def set_mode(self, mode: str, reason: str) -> None:
        """``hold`` or ``autonomous`` on the safety node."""

    def reset_sim(self) -> None: ...

    def set_next_seed(self, seed: int) -> None:
        """The sim robot's next reset uses this seed (later ones count on from it)."""

    def sim_status(self) -> SimStatus: ...

    def check_camera(self) -> dict:
        """The camera check's result (its JSON), or ``{'error': why}`` when it was refused."""

    def start_episode(self, task: str, note: str) -> str:
        """Returns the episode id."""

    def end_episode(self, success: bool, note: str) -> str:
        """Returns the path of the finalised bag."""

    def abort_episode(self, note: str) -> None: ...

    def policy_samples(self) -> list:
        """The PolicySamples received since the previous call."""

    def policy_status(self) -> str:
        """What the policy node last said about itself (for an episode without actions)."""


@dataclass(frozen=True)
class RunnerConfig:
    episodes: int = 10
    task: str = 'juicing-place'
    time_limit: float = 0.0  # s simulated per episode; 0: the task's own (from the sim robot)
    poll_period: float = 0.05  # s wall between status polls
    reset_timeout: float = 20.0  # s wall for a reset to show in the sim status
    stall_timeout: float = 20.0  # s wall without simulated time advancing: the sim is stuck
    # episodes that may end in a stack error (a node died and respawns, a service timed out)
    # before the run stops; each is recorded as a failed episode with its error, and the next
    # one waits for the stack to be ready again
    max_errors: int = 0
    first_seed: int = -1  # env seed of the first episode; -1: the sim robot's next one
    expect_model: str = ''  # policy model id every episode must run (ActionChunk.model_id)
    check_camera: bool = False  # check (and correct) the scene camera after every reset

    def __post_init__(self):
        if self.episodes < 1:
            raise ValueError(f'episodes must be >= 1, got {self.episodes}')
        if self.max_errors < 0:
            raise ValueError(f'max_errors must be >= 0, got {self.max_errors}')
        if self.first_seed < -1:
            raise ValueError(f'first_seed must be >= 0 (or -1: the next seed), got '
                             f'{self.first_seed}')
        if not self.time_limit >= 0.0:
            raise ValueError(f'time_limit must be >= 0 s (0: the limit of the task), got '
                             f'{self.time_limit}')
        for name in ('poll_period', 'reset_timeout', 'stall_timeout'):
            if not getattr(self, name) > 0.0:
                raise ValueError(f'{name} must be > 0 s, got {getattr(self, name)}')


@dataclass
class EpisodeResult:
    index: int  # 1-based
    seed: int
    success: bool
    duration: float  # s simulated from AUTONOMOUS to success (or to the time limit)
    episode_id: str
    bag: str
    control_time: float  # s simulated under AUTONOMOUS
    actions: int  # policy actions (ActionChunks) stamped within it
    fresh: int = 0  # of which computed on a new observation (distinct stamps)
    latencies: list = field(default_factory=list)  # s, one per prediction
    wall_time: float = 0.0
    note: str = ''  # why there were no actions, as far as the policy node said
    error: str = ''  # the stack error that ended the episode (counted as a failure)
    model: str = ''  # the model id(s) of the policy actions, comma-separated
    takeover: dict | None = None  # the scripted operator's takeover {'step', 'reason'}, if any
    lockstep_timeouts: int | None = None  # sim ticks that waited out lockstep_timeout for a
    # target while the policy was in control (None: the sim robot does not report them)
    camera_check: dict | None = None  # the check before the episode (check_camera), if any


class EpisodeRunner:
    """Runs ``config.episodes`` episodes; ``on_result`` is called after each one."""

    def __init__(self, stack: Stack, config: RunnerConfig,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 on_result: Callable[[EpisodeResult], None] | None = None):
        self.stack, self.config = stack, config
        self._sleep, self._monotonic = sleep, monotonic
        self._on_result = on_result
        self.phase = Phase.DONE
        self.results: list = []
        self._ep: dict = {}  # the current episode's working values
        self._last_latency = None
        self._period = None  # s, control period stated by the last chunk seen

    def run(self) -> list:
        try:
            self.stack.wait_ready()
        except CancelledError as exc:
            raise CancelledError(f'before the first episode: {exc}') from exc
        except Exception as exc:
            raise EpisodeError(f'before the first episode: {exc}') from exc
        errors = 0
        for index in range(1, self.config.episodes + 1):
            try:
                if self.results and not self.results[-1].error and not self.results[-1].actions:
                    self._wait_policy_back(index)
                result = self.run_episode(index)
            except CancelledError:
                raise  # a stop request, not a fault to ride out
            except EpisodeError as exc:
                errors += 1
                if errors > self.config.max_errors:
                    raise
                result = self._errored(index, str(exc))
            self.results.append(result)
            if self._on_result is not None:
                self._on_result(result)
        return self.results

    def _wait_policy_back(self, index: int) -> None:
        """Wait until the stack is ready again after an episode without policy actions.

        The policy node died and respawns, say: this episode must not run without a policy too.
        """
        self._ep = {'index': index, 'wall0': self._monotonic(), 'episode_id': ''}
        self._wait_ready_again(f'episode {index}/{self.config.episodes} (waiting for the policy '
                               'after an episode without its actions): ')

    def _errored(self, index: int, error: str) -> EpisodeResult:
        """The record of an episode a stack error ended; then wait until the stack is ready."""
        ep = self._ep
        result = EpisodeResult(index=index, seed=ep.get('seed', -1), success=False, duration=0.0,
                               episode_id=ep.get('episode_id', ''), bag='', control_time=0.0,
                               actions=0, wall_time=self._monotonic() - ep['wall0'], error=error)
        self.stack.policy_samples()  # what the lost episode's policy sent: not the next one's
        self._wait_ready_again(f'after the error of episode {index} ({error}), the stack did not '
                               'come back: ')
        return result

    def _wait_ready_again(self, why: str) -> None:
        """``Stack.wait_ready``; its failure an EpisodeError starting with ``why``.

        What the policy sent while waiting is dropped: it is not the next episode's.
        """
        try:
            self.stack.wait_ready()
        except CancelledError:
            raise
        except Exception as exc:
            raise EpisodeError(f'{why}{exc}') from exc
        self.stack.policy_samples()

    def run_episode(self, index: int) -> EpisodeResult:
        self._ep = {'index': index, 'wall0': self._monotonic(), 'episode_id': ''}
        self.phase = Phase.HOLD_FOR_RESET
        try:
            while self.phase != Phase.DONE:
                self.phase = self.step()
        except Exception as exc:
            where = f'episode {index}/{self.config.episodes} ({self.phase.value})'
            self._abandon(where)
            if isinstance(exc, CancelledError):
                raise CancelledError(f'{where}: {exc}') from exc
            raise EpisodeError(f'{where}: {exc}') from exc
        return self._ep['result']

    # --- the state machine: one stack call per step -------------------------------------------
    def step(self) -> Phase:
        """Do the current phase's work; return the next phase (the same one while polling)."""
        ep, stack, cfg, now = self._ep, self.stack, self.config, self._monotonic()
        if self.phase == Phase.HOLD_FOR_RESET:
            stack.set_mode('hold', f'episode {ep["index"]}: reset')
            if ep['index'] == 1 and cfg.first_seed >= 0:
                stack.set_next_seed(cfg.first_seed)
            ep['before'] = stack.sim_status()
            return Phase.RESET
        if self.phase == Phase.RESET:
            stack.reset_sim()
            ep['reset_at'] = now
            return Phase.WAIT_RESET
        if self.phase == Phase.WAIT_RESET:
            status, before = stack.sim_status(), ep['before']
            if (status.resets != before.resets if status.resets is not None
                    else status.seed != before.seed):
                ep['seed'] = status.seed
                ep['time_limit'] = cfg.time_limit or status.time_limit
                if not ep['time_limit'] > 0.0:
                    raise StackError(f'the sim robot reports no time limit ({status.time_limit})')
                return Phase.CHECK_CAMERA if cfg.check_camera else Phase.START
            if now - ep['reset_at'] > cfg.reset_timeout:
                raise StackError(f'the sim robot did not apply the reset within '
                                 f'{cfg.reset_timeout:g} s (still seed {status.seed}, '
                                 f'{status.resets} resets)')
            self._sleep(min(cfg.poll_period, 0.01))  # the robot holds an old target meanwhile
            return Phase.WAIT_RESET
        if self.phase == Phase.CHECK_CAMERA:
            ep['camera_check'] = stack.check_camera()
            return Phase.START
        if self.phase == Phase.START:
            note = f'evaluation episode {ep["index"]}/{cfg.episodes}, seed {ep["seed"]}'
            ep['episode_id'] = stack.start_episode(cfg.task, note)
            return Phase.AUTONOMOUS
        if self.phase == Phase.AUTONOMOUS:
            status = stack.sim_status()  # before the switch: durations are upper bounds
            ep['t0'], ep['t0_sim'] = status.episode_time, status.time
            ep['timeouts0'] = status.lockstep_timeouts
            ep['progress'] = (status.time, now)
            stack.policy_samples()  # drop what came before the policy was in control
            stack.set_mode('autonomous', f'episode {ep["index"]}')
            return Phase.RUN
        if self.phase == Phase.RUN:
            return self._poll(now)
        if self.phase == Phase.HOLD:
            stack.set_mode('hold', f'episode {ep["index"]}: {self._label()}')
            return Phase.END
        if self.phase == Phase.END:
            ep['bag'] = stack.end_episode(ep['success'], self._label())
            self._finish()
            return Phase.DONE
        raise AssertionError(f'no work in phase {self.phase}')

    def _poll(self, now: float) -> Phase:
        ep, cfg = self._ep, self.config
        status = self.stack.sim_status()
        if status.seed != ep['seed']:
            raise StackError(f'the simulated task was reset from elsewhere (seed {status.seed}, '
                             f'this episode runs seed {ep["seed"]})')
        elapsed = status.episode_time - ep['t0']
        succeeded = status.success_time is not None and status.success_time >= ep['t0']
        if succeeded or elapsed >= ep['time_limit']:
            ep['success'] = succeeded
            ep['duration'] = status.success_time - ep['t0'] if succeeded else elapsed
            ep['t1_sim'] = status.time
            ep['takeover'] = status.takeover
            if ep.get('timeouts0') is not None and status.lockstep_timeouts is not None:
                ep['timeouts'] = status.lockstep_timeouts - ep['timeouts0']
            return Phase.HOLD
        last_time, last_wall = ep['progress']
        if status.time > last_time:
            ep['progress'] = (status.time, now)
        elif now - last_wall > cfg.stall_timeout:
            raise StackError(f'simulated time stuck at {status.time:.2f} s for '
                             f'{now - last_wall:.0f} s: the sim robot is not stepping')
        self._sleep(cfg.poll_period)
        return Phase.RUN

    def _label(self) -> str:
        ep = self._ep
        if ep['success']:
            return f'success after {ep["duration"]:.2f} s'
        return f'failure: no success within {ep["time_limit"]:g} s'

    def _finish(self) -> None:
        ep = self._ep
        t0, t1 = ep['t0_sim'], ep['t1_sim']
        samples = [s for s in self.stack.policy_samples() if t0 < s.stamp <= t1]
        actions = len(samples)
        models = sorted({s.model_id for s in samples})
        latencies = []
        for s in samples:  # a chunk repeats the latency of the last prediction: one per change
            if s.latency != self._last_latency:
                latencies.append(s.latency)
                self._last_latency = s.latency
        ep['result'] = EpisodeResult(
            index=ep['index'], seed=ep['seed'], success=ep['success'], duration=ep['duration'],
            episode_id=ep['episode_id'], bag=ep['bag'], control_time=t1 - t0,
            actions=actions, fresh=len({s.stamp for s in samples}), latencies=latencies,
            wall_time=self._monotonic() - ep['wall0'], model=','.join(models),
            takeover=ep.get('takeover'), lockstep_timeouts=ep.get('timeouts'),
            camera_check=ep.get('camera_check'),
            note='' if actions else f'no policy actions: {self.stack.policy_status()}')
        if samples and samples[-1].period > 0:
            self._period = samples[-1].period
        expected = self.config.expect_model
        if expected and any(m != expected for m in models):
            raise StackError(f'the policy node ran {", ".join(models)}, not {expected} (did it '
                             'restart with its start-up model after a LoadPolicy swap?); the '
                             f'bag {ep["bag"]} stays as recorded')

    def _abandon(self, where: str) -> None:
        """After a failure: best effort to stop the robot and discard the open episode."""
        try:
            self.stack.set_mode('hold', f'{where} failed')
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        if self._ep.get('episode_id') and 'bag' not in self._ep:
            try:
                self.stack.abort_episode(f'{where} failed')
            except Exception:  # noqa: BLE001
                pass

    @property
    def nominal_rate(self) -> float | None:
        """Hz, the policy's control rate as its chunks state it (None before any chunk)."""
        return 1.0 / self._period if self._period else None
