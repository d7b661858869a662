"""The figures of a run of evaluation episodes: what ``make demo`` prints and the results JSON.

:func:`summarize` turns :class:`rl100_bringup.episodes.EpisodeResult` objects into success rate,
mean cycle time (simulated seconds of the successful episodes), achieved control rate (policy
actions per simulated second) and policy inference latency (p50 / p99, as the policy node
reports it in every ActionChunk); :func:`format_results` prints them, :func:`results_dict` is
the same as plain JSON types (``--results-json``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import math

import numpy as np


@dataclass
class Summary:
    episodes: int
    successes: int
    success_rate: float
    mean_cycle_time: float | None  # s simulated, successful episodes only
    control_rate: float | None  # policy actions per simulated second under AUTONOMOUS
    fresh_fraction: float | None  # of the actions, those computed on a new observation
    nominal_rate: float | None  # Hz the policy was asked to run at
    predictions: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    sim_time: float  # s simulated under AUTONOMOUS, all episodes
    wall_time: float  # s, all episodes including resets
    errors: int = 0  # episodes a stack error ended (counted as failures above)
    lockstep_timeouts: int | None = None  # summed over episodes (None: not reported)

    @property
    def real_time_factor(self) -> float | None:
        return self.sim_time / self.wall_time if self.wall_time > 0 else None


def summarize(results: list, nominal_rate: float | None = None) -> Summary:
    n = len(results)
    wins = [r for r in results if r.success]
    control_time = sum(r.control_time for r in results)
    actions = sum(r.actions for r in results)
    latencies = np.asarray([v for r in results for v in r.latencies], dtype=np.float64) * 1e3
    return Summary(
        episodes=n, successes=len(wins), success_rate=len(wins) / n if n else 0.0,
        mean_cycle_time=float(np.mean([r.duration for r in wins])) if wins else None,
        control_rate=actions / control_time if control_time > 0 else None,
        fresh_fraction=sum(r.fresh for r in results) / actions if actions else None,
        nominal_rate=nominal_rate, predictions=int(latencies.size),
        latency_p50_ms=float(np.percentile(latencies, 50)) if latencies.size else None,
        latency_p99_ms=float(np.percentile(latencies, 99)) if latencies.size else None,
        sim_time=control_time, wall_time=sum(r.wall_time for r in results),
        errors=sum(1 for r in results if r.error),
        lockstep_timeouts=None if all(r.lockstep_timeouts is None for r in results)
        else sum(r.lockstep_timeouts or 0 for r in results))


def _num(value, fmt: str, unit: str = '') -> str:
    return 'n/a' if value is None or not math.isfinite(value) else f'{value:{fmt}}{unit}'


def format_results(results: list, summary: Summary) -> str:
    """The table ``make demo`` prints: one row per episode, then the summary figures."""
    rows = [f'{"episode":>7}  {"seed":>5}  {"result":<7}  {"time (s)":>8}  {"actions":>7}  bag']
    for r in results:
        outcome = 'success' if r.success else 'error' if r.error else 'failure'
        rows.append(f'{r.index:>7}  {r.seed:>5}  {outcome:<7}  '
                    f'{r.duration:>8.2f}  {r.actions:>7}  {r.bag}')
    rows += [f'episode {r.index}: {r.note}' for r in results if r.note]
    rows += [f'episode {r.index}: stack error: {r.error}' for r in results if r.error]
    s = summary
    rate = _num(s.control_rate, '.1f', ' Hz')
    nominal = f'; nominal {_num(s.nominal_rate, ".1f", " Hz")}' if s.nominal_rate else ''
    wall_rate = (s.control_rate * s.real_time_factor
                 if s.control_rate and s.real_time_factor else None)
    fresh = 100 * s.fresh_fraction if s.fresh_fraction is not None else None
    rows += [
        '',
        f'success rate      {s.successes}/{s.episodes} = {100 * s.success_rate:.0f} %'
        + (f' ({s.errors} ended by a stack error, counted as failures)' if s.errors else ''),
        f'mean cycle time   {_num(s.mean_cycle_time, ".2f", " s")} simulated '
        '(successful episodes, from the policy taking control to the task succeeding)',
        f'control rate      {rate} policy actions per simulated second{nominal}; '
        f'{_num(wall_rate, ".1f", " Hz")} in wall-clock time; '
        f'{_num(fresh, ".0f", " %")} of them on a new observation',
        f'policy latency    p50 {_num(s.latency_p50_ms, ".2f", " ms")}, '
        f'p99 {_num(s.latency_p99_ms, ".2f", " ms")} '
        f'(inference, {s.predictions} predictions, as the policy node reports it)',
        f'time              {s.sim_time:.1f} s simulated under the policy in {s.wall_time:.1f} s '
        f'wall (real-time factor {_num(s.real_time_factor, ".2f")}, resets included)'
        + ('' if s.lockstep_timeouts is None else
           f'; {s.lockstep_timeouts} lockstep timeouts under the policy'),
    ]
    return '\n'.join(rows)


def results_dict(results: list, summary: Summary, meta: dict | None = None) -> dict:
    """Everything as plain JSON types (``--results-json``)."""
    return {'meta': dict(meta or {}),
            'summary': {**asdict(summary), 'real_time_factor': summary.real_time_factor},
            'episodes': [{k: v for k, v in asdict(r).items() if k != 'latencies'}
                         for r in results]}
