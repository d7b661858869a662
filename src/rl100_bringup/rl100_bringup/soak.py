"""Soak: the orange_juicer graph running episodes for hours, watched from outside.

    python -m rl100_bringup.soak --sim-hours 7 --out runs/soak [--model PATH] [NAME:=VALUE ...]

Starts ``up orange_juicer --episodes <many>`` (sim robot, policy, safety, recorder; respawning
nodes; stack errors tolerated and counted) and, while it runs:

- reads each finished episode from the runner's JSON lines (success, simulated control time,
  policy actions, inference latencies, the bag);
- opens every finished bag (rosbags, MCAP), counts its messages and moves it out of the
  recorder's directory into ``archive/hour_NNN/`` -- the rotation that keeps the recorder's
  directory small; a bag that does not open is kept in ``unreadable/`` and counted;
- samples the resident memory of every node process (``/proc/PID/status``) every
  ``--sample-period`` seconds, following respawns.

It stops the graph (SIGINT) once the policy has been in control for ``--sim-hours`` of simulated
time and writes ``soak.json`` and ``soak.md``: per simulated hour the episodes, success rate,
stack errors, control rate, lockstep timeouts (ticks the simulator stepped on a held target: no
answer within its ``lockstep_timeout``), inference latency p50 / p99, bags verified, disk used,
and with ``camera_check:=true`` the camera checks before the episodes (corrections, table
heights set, refusals); per node the
memory at the start and end and its growth per hour (least-squares slope over wall time).
Exit code 0 when the graph ran to the end without an unexpected node death and every finished
episode's bag was readable. The same files are written every ``--report-every`` simulated
seconds (an hour by default; ``finished: false``), so a soak killed from outside keeps what it ran.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
import json
import math
from pathlib import Path
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np

STARTED = re.compile(r'\[up\] started (\w+) \(pid (\d+)\)')


@dataclass
class HourStats:
    hour: int
    episodes: int = 0
    successes: int = 0
    errors: int = 0
    control_time: float = 0.0  # s simulated under the policy
    actions: int = 0
    latencies_ms: list = field(default_factory=list)
    bags: int = 0
    bags_readable: int = 0
    disk_bytes: int = 0
    lockstep_timeouts: int = 0  # sim ticks that waited out lockstep_timeout for a target
    camera_checks: int = 0  # checks before an episode (a graph with camera_check:=true)
    camera_corrected: int = 0  # of which set a corrected camera_pose
    table_set: int = 0  # of which set a new table_dz
    camera_refused: int = 0  # of which were refused (the scene did not match)

    def row(self) -> dict:
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        return {'hour': self.hour, 'episodes': self.episodes, 'successes': self.successes,
                'success_rate': self.successes / self.episodes if self.episodes else None,
                'errors': self.errors, 'control_time_s': round(self.control_time, 2),
                'control_rate_hz': self.actions / self.control_time if self.control_time else None,
                'latency_p50_ms': float(np.percentile(lat, 50)) if lat.size else None,
                'latency_p99_ms': float(np.percentile(lat, 99)) if lat.size else None,
                'bags': self.bags, 'bags_readable': self.bags_readable,
                'disk_mb': round(self.disk_bytes / 1e6, 3),
                'lockstep_timeouts': self.lockstep_timeouts,
                'camera_checks': self.camera_checks, 'camera_corrected': self.camera_corrected,
                'table_set': self.table_set, 'camera_refused': self.camera_refused}


def memory_growth(samples: list, settle_s: float = 120.0) -> dict:
    """``samples``: (wall_s, node, rss_mb) -> per node: first, last, max MB and MB per hour.

    The growth is the least-squares slope over the samples after ``settle_s`` (start-up:
    imports, first inference, DDS discovery), over all samples when fewer than 3 are left.
    """
    out = {}
    for node in sorted({n for _, n, _ in samples}):
        t = np.array([s[0] for s in samples if s[1] == node], dtype=np.float64)
        m = np.array([s[2] for s in samples if s[1] == node], dtype=np.float64)
        late = t >= t[0] + settle_s
        tt, mm = (t[late], m[late]) if late.sum() >= 3 else (t, m)
        slope = None
        if len(tt) >= 3 and np.ptp(tt) > 0:
            slope = float(np.polyfit(tt, mm, 1)[0]) * 3600.0
        out[node] = {'first_mb': float(m[0]), 'last_mb': float(m[-1]), 'max_mb': float(m.max()),
                     'samples': int(len(m)), 'growth_mb_per_hour': slope}
    return out


def rss_mb(pid: int) -> float | None:
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def verify_bag(path: Path) -> tuple[bool, int, str]:
    """(readable, messages, problem) of a finished episode bag."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import get_typestore, Stores

    try:
        with AnyReader([path], default_typestore=get_typestore(Stores.EMPTY)) as reader:
            n = sum(1 for _ in reader.messages())
        return n > 0, n, '' if n else 'no messages'
    except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
        return False, 0, f'{exc.__class__.__name__}: {exc}'


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())


class Soak:

    def __init__(self, args):
        self.args = args
        self.out = Path(args.out).resolve()
        self.record = self.out / 'episodes'
        self.jsonl = self.out / 'episodes.jsonl'
        self.hours: dict = {}
        self.sim_total = 0.0
        self.memory: list = []  # (wall s since start, node, MB)
        self.pids: dict = {}
        self.lines: list = []
        self.unreadable: list = []
        self.unreported: list = []
        self.t0 = time.monotonic()

    def command(self) -> list:
        a = self.args
        cmd = [sys.executable, '-m', 'rl100_bringup.up', 'orange_juicer',
               f'record_dir:={self.record}', '--episodes', str(a.max_episodes),
               '--max-errors', str(a.max_errors), '--episodes-jsonl', str(self.jsonl),
               '--time-limit', str(a.time_limit), '--results-json', str(self.out / 'up.json')]
        if a.model:
            cmd.append(f'model:={a.model}')
        return cmd + list(a.launch_args)

    def _read(self, proc) -> None:
        for line in proc.stdout:
            self.lines.append(line)
            if self.args.verbose:
                print(line, end='', flush=True)
            m = STARTED.search(line)
            if m:
                self.pids[m.group(1)] = int(m.group(2))

    def _episode(self, rec: dict) -> None:
        hour = int(self.sim_total // 3600.0)
        h = self.hours.setdefault(hour, HourStats(hour))
        h.episodes += 1
        h.successes += bool(rec['success'])
        h.errors += bool(rec.get('error'))
        h.control_time += float(rec['control_time'])
        h.actions += int(rec['actions'])
        h.latencies_ms += [1e3 * v for v in rec.get('latencies', [])]
        h.lockstep_timeouts += int(rec.get('lockstep_timeouts') or 0)
        check = rec.get('camera_check')
        if check is not None:
            h.camera_checks += 1
            h.camera_corrected += bool(check.get('corrected'))
            h.table_set += bool(check.get('table_set'))
            h.camera_refused += 'error' in check
        self.sim_total += float(rec['control_time'])
        bag = Path(rec['bag']) if rec.get('bag') else None
        if bag is None:
            return
        h.bags += 1
        ok, _, problem = verify_bag(bag)
        dest = self.out / ('archive' if ok else 'unreadable') / f'hour_{hour:03d}'
        dest.mkdir(parents=True, exist_ok=True)
        if bag.exists():
            h.disk_bytes += dir_bytes(bag)
            shutil.move(str(bag), str(dest / bag.name))
        if ok:
            h.bags_readable += 1
        else:
            self.unreadable.append({'bag': str(bag), 'problem': problem})

    def run(self) -> int:
        a = self.args
        self.out.mkdir(parents=True, exist_ok=True)
        self.jsonl.unlink(missing_ok=True)
        proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        reader.start()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        offset, next_sample, stopped_at = 0, 0.0, None
        target = a.sim_hours * 3600.0
        reported = 0  # progress reports written
        while proc.poll() is None:
            now = time.monotonic() - self.t0
            if now >= next_sample:
                for node, pid in list(self.pids.items()):
                    mb = rss_mb(pid)
                    if mb is not None:
                        self.memory.append((round(now, 2), node, round(mb, 2)))
                next_sample = now + a.sample_period
            if self.jsonl.exists():
                with open(self.jsonl) as f:
                    f.seek(offset)
                    chunk = f.read()
                complete = chunk[:chunk.rfind('\n') + 1]
                offset += len(complete)
                for line in complete.splitlines():
                    self._episode(json.loads(line))
            if int(self.sim_total // a.report_every) > reported:  # written now, so a soak
                reported = int(self.sim_total // a.report_every)  # killed later keeps it
                self.report(None, reached=False, final=False)
            if stopped_at is None and (self.sim_total >= target or stop.is_set()):
                proc.send_signal(signal.SIGINT)  # up stops the episodes and the graph
                stopped_at = time.monotonic()
            time.sleep(0.2)
        reader.join(timeout=5)
        if self.jsonl.exists():  # episodes that finished after the last read
            with open(self.jsonl) as f:
                f.seek(offset)
                for line in f.read().splitlines():
                    self._episode(json.loads(line))
        self.keep_unreported()
        return self.report(proc.returncode, reached=self.sim_total >= target)

    def keep_unreported(self) -> None:
        """Move the finished bags the runner never reported into ``archive/unreported/``, verified.

        The episode open when the soak stops the graph ends as interrupted: the runner writes no
        record for it, but the recorder may still close its bag (more often under load). Such a bag
        is recorded data: it is kept and listed (``unreported_bags``), not left behind or counted
        as an episode. Unfinished ``.partial`` bags stay where the recorder left them.
        """
        if not self.record.is_dir():
            return
        for bag in sorted(self.record.iterdir()):
            if bag.name.endswith('.partial'):
                continue
            ok, n, problem = verify_bag(bag)
            dest = self.out / 'archive' / 'unreported'
            dest.mkdir(parents=True, exist_ok=True)
            shutil.move(str(bag), str(dest / bag.name))
            self.unreported.append({'bag': str(dest / bag.name), 'readable': ok, 'messages': n,
                                    'problem': problem})

    def report(self, up_code: int | None, reached: bool, final: bool = True) -> int:
        """Write soak.json, soak.md and memory.csv; ``final=False``: a progress report."""
        out = ''.join(self.lines)
        # the soak's own SIGINT ends the open episode as "interrupted": that is the plan
        unexpected = [e for e in re.findall(r'\[up\] error: (.*)', out)
                      if not e.rstrip().endswith('interrupted')]
        rows = [self.hours[h].row() for h in sorted(self.hours)]
        total = HourStats(-1)
        for h in self.hours.values():
            for k, v in asdict(h).items():
                if k != 'hour':
                    setattr(total, k, getattr(total, k) + v)
        data = {'sim_hours_target': self.args.sim_hours, 'sim_hours': self.sim_total / 3600.0,
                'wall_hours': (time.monotonic() - self.t0) / 3600.0, 'reached': reached,
                'finished': final,
                'up_exit_code': up_code, 'up_errors': unexpected,
                'respawns': re.findall(r'\[up\] (\w+) exited with (-?\d+); respawning', out),
                'hours': rows, 'total': total.row() | {'hour': 'all'},
                'memory': memory_growth(self.memory), 'unreadable_bags': self.unreadable,
                'unreported_bags': self.unreported,
                'command': self.command()}
        (self.out / 'soak.json').write_text(json.dumps(data, indent=2))
        with open(self.out / 'memory.csv', 'w') as f:
            f.write('wall_s,node,rss_mb\n' + ''.join(f'{t},{n},{m}\n' for t, n, m in self.memory))
        text = format_report(data)
        (self.out / 'soak.md').write_text(text)
        print(text if final else f'[soak] {data["sim_hours"]:.2f} h simulated, report written',
              flush=True)
        ok = reached and not unexpected and not self.unreadable \
            and total.bags == total.bags_readable and all(b['readable'] for b in self.unreported)
        return 0 if ok else 1


def _f(value, fmt: str) -> str:
    return 'n/a' if value is None or (isinstance(value, float) and not math.isfinite(value)) \
        else format(value, fmt)


def format_report(d: dict) -> str:
    reached = ('reached' if d['reached'] else 'NOT reached') if d.get('finished', True) \
        else 'still running'
    lines = [f'# Soak: {d["sim_hours"]:.2f} h simulated under the policy in '
             f'{d["wall_hours"]:.2f} h wall (target {d["sim_hours_target"]:g} h: {reached})',
             '', '| sim hour | episodes | success | stack errors | control rate '
             '| lockstep timeouts | latency p50 / p99 | bags readable | disk |',
             '|---:|---:|---:|---:|---:|---:|---|---:|---:|']
    for r in d['hours'] + [d['total']]:
        lines.append(f'| {r["hour"]} | {r["episodes"]} | {_f(r["success_rate"], ".2f")} | '
                     f'{r["errors"]} | {_f(r["control_rate_hz"], ".2f")} Hz | '
                     f'{r.get("lockstep_timeouts", 0)} | '
                     f'{_f(r["latency_p50_ms"], ".1f")} / {_f(r["latency_p99_ms"], ".1f")} ms | '
                     f'{r["bags_readable"]}/{r["bags"]} | {r["disk_mb"]:.1f} MB |')
    if d['total'].get('camera_checks'):
        lines += ['', '| sim hour | camera checks | camera_pose corrected | table_dz set '
                  '| refused |', '|---:|---:|---:|---:|---:|']
        lines += [f'| {r["hour"]} | {r["camera_checks"]} | {r["camera_corrected"]} | '
                  f'{r["table_set"]} | {r["camera_refused"]} |' for r in d['hours'] + [d['total']]]
    lines += ['', '| node | RSS first | last | max | growth per hour |',
              '|---|---:|---:|---:|---:|']
    for node, m in d['memory'].items():
        lines.append(f'| {node} | {m["first_mb"]:.0f} MB | {m["last_mb"]:.0f} MB | '
                     f'{m["max_mb"]:.0f} MB | {_f(m["growth_mb_per_hour"], "+.1f")} MB/h |')
    lines += ['', f'respawns: {d["respawns"] or "none"}; '
              f'graph errors: {d["up_errors"] or "none"}; '
              f'unreadable bags: {len(d["unreadable_bags"])}']
    unreported = d.get('unreported_bags') or []
    if unreported:
        readable = sum(b['readable'] for b in unreported)
        lines.append(f'bags of the episode interrupted by the stop (no runner record, kept in '
                     f'archive/unreported): {len(unreported)}, {readable} readable')
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m rl100_bringup.soak',
                                     description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sim-hours', type=float, default=7.0,
                        help='simulated hours under the policy before the graph is stopped')
    parser.add_argument('--out', default='runs/soak', help='run directory')
    parser.add_argument('--model', default='', help='ONNX policy (default: the shipped model)')
    parser.add_argument('--time-limit', type=float, default=0.0,
                        help='simulated seconds per episode (0: the task limit)')
    parser.add_argument('--max-episodes', type=int, default=1_000_000)
    parser.add_argument('--max-errors', type=int, default=100,
                        help='episodes a stack error may end before the graph is stopped')
    parser.add_argument('--sample-period', type=float, default=10.0,
                        help='wall seconds between memory samples')
    parser.add_argument('--report-every', type=float, default=3600.0,
                        help='simulated seconds between progress reports')
    parser.add_argument('--verbose', action='store_true', help="echo the graph's output")
    parser.add_argument('launch_args', nargs='*', metavar='NAME:=VALUE')
    args = parser.parse_intermixed_args(argv)
    if not args.sim_hours > 0 or args.sample_period <= 0 or args.max_episodes < 1 \
            or not args.report_every > 0:
        parser.error('need --sim-hours > 0, --sample-period > 0, --report-every > 0, '
                     '--max-episodes >= 1')
    return Soak(args).run()


if __name__ == '__main__':
    sys.exit(main())
