"""Robustness through the whole ROS stack: ``rl100 robustness``'s families, run on the graph.

    python -m rl100_bringup.robustness [--model PATH] --families all --episodes 20 --out DIR

For the nominal world and then each (family, severity) it starts the orange_juicer graph with
the sim robot's ``disturbance`` set to that family (``up orange_juicer disturbance:=NAME:SEVERITY
sim_seed:=SEED --episodes N``): the sim robot, policy node, safety node and recorder run as in
the main job, every row on the same simulated seeds. It prints and writes the same table and
bar plot as the in-process command (``robustness.md``, ``robustness.png``, ``results.json``,
with the graph's output per row under ``logs/``). A row whose graph fails is reported with its
error and the command goes on; the exit code is then 1. A graph that ran every episode but did
not stop cleanly only gives a warning (the row's figures stand). ``--arg NAME:=VALUE`` passes
a launch argument to every row's graph: ``--arg camera_check:=true --arg camera_correct:=true``
checks the scene camera against the robot before every episode and corrects its calibration
(the counts of corrected and refused checks go into each row).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import subprocess
import sys

import numpy as np


def families_for(task: str, names: list) -> list:
    """``['all']`` -> every family that applies to ``task``'s simulated robot (as in-process)."""
    if names != ['all']:
        return names
    from rl100.sim import disturbances

    probe = disturbances.make_env(task, None, obs=('state', 'points'))
    try:
        return [n for n, why in disturbances.applicability(probe).items() if why is None]
    finally:
        probe.close()


def stack_row(model: str, spec: str, episodes: int, seed: int, out: Path, timeout: float,
              time_limit: float, launch_args: tuple = ()) -> dict:
    """One graph run with the sim robot's disturbance ``spec``: the row of the result table."""
    from rl100.robustness import wilson

    name = spec.replace(':', '_') or 'nominal'
    results, log = out / 'runs' / f'{name}.json', out / 'logs' / f'{name}.log'
    results.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, '-m', 'rl100_bringup.up', 'orange_juicer',
           f'disturbance:={spec or "none"}', f'sim_seed:={seed}',
           f'record_dir:={out / "bags" / name}',
           '--episodes', str(episodes), '--results-json', str(results),
           '--time-limit', str(time_limit), '--duration', str(timeout), *launch_args]
    if model:
        cmd.append(f'model:={model}')
    with open(log, 'w') as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout + 60)
    row = {'command': cmd, 'log': str(log), 'error': ''}
    if not results.exists():
        return row | {'error': f'graph exited with {proc.returncode} and no results (see {log})',
                      'episodes': 0, 'successes': 0, 'success_rate': 0.0, 'ci95': [0.0, 1.0],
                      'mean_length': float('nan')}
    data = json.loads(results.read_text())
    eps = data['episodes']
    k = sum(1 for e in eps if e['success'])
    n = len(eps)
    error = data['meta'].get('error', '')
    if not error and n < episodes:
        error = f'graph exited with {proc.returncode} after {n} of {episodes} episodes'
    if proc.returncode != 0 and not error:  # every episode ran; a node did not stop cleanly
        row['warning'] = f'graph exited with {proc.returncode} after its episodes (see {log})'
    checks = [e['camera_check'] for e in eps if e.get('camera_check') is not None]
    if checks:
        row['camera_checks'] = {'checks': len(checks),
                                'corrected': sum(1 for c in checks if c.get('corrected')),
                                'refused': [c['error'] for c in checks if 'error' in c]}
    return row | {
        'error': error,
        'episodes': n, 'successes': k, 'success_rate': k / n if n else 0.0,
        'ci95': list(wilson(k, n)), 'mean_length': float(np.mean([e['actions'] for e in eps]))
        if eps else float('nan'), 'seeds': [e['seed'] for e in eps],
        'mean_cycle_time': data['summary']['mean_cycle_time'],
        'latency_p99_ms': data['summary']['latency_p99_ms']}


def main(argv=None) -> int:
    from rl100.robustness import bar_plot, markdown_table
    from rl100.sim.disturbances import make_family

    parser = argparse.ArgumentParser(prog='python -m rl100_bringup.robustness',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='', help='ONNX policy (default: the shipped model)')
    parser.add_argument('--task', default='juicing-place')
    parser.add_argument('--families', default='all', help="comma-separated names, or 'all'")
    parser.add_argument('--severity', default='moderate', help='comma-separated: mild, '
                        'moderate, severe')
    parser.add_argument('--episodes', type=int, default=20)
    parser.add_argument('--seed', type=int, default=0, help="the sim robot's first seed "
                        '(sim_seed); every row runs the same seeds')
    parser.add_argument('--time-limit', type=float, default=0.0,
                        help='simulated seconds per episode (0: the task limit)')
    parser.add_argument('--row-timeout', type=float, default=1800.0,
                        help='wall seconds one row (one graph run) may take')
    parser.add_argument('--out', default='runs/robust_stack')
    parser.add_argument('--arg', action='append', default=[], metavar='NAME:=VALUE',
                        help="a launch argument for every row's graph (repeatable), e.g. "
                        'camera_check:=true')
    args = parser.parse_args(argv)
    if any(':=' not in a for a in args.arg):
        parser.error('--arg takes NAME:=VALUE')
    if args.episodes < 1:
        parser.error('--episodes must be >= 1')
    names = families_for(args.task, [f.strip() for f in args.families.split(',') if f.strip()])
    sevs = [s.strip() for s in args.severity.split(',') if s.strip()]
    try:
        specs = [(make_family(n, s).name, s) for n in names for s in sevs]  # unknown: named here
    except ValueError as exc:
        print(f'robustness: {exc}', file=sys.stderr)
        return 2
    out = Path(args.out)
    run = lambda spec: stack_row(args.model, spec, args.episodes, args.seed, out,  # noqa: E731
                                 args.row_timeout, args.time_limit, tuple(args.arg))
    nominal = run('')
    print(f'nominal: success {nominal["success_rate"]:.2f} {nominal["error"]}', flush=True)
    rows = []
    for name, sev in specs:
        r = run(f'{name}:{sev}') | {'family': name, 'severity': sev}
        r['delta'] = r['success_rate'] - nominal['success_rate']
        rows.append(r)
        print(f'{name}:{sev}: success {r["success_rate"]:.2f} ({r["delta"]:+.2f}) {r["error"]}',
              flush=True)
    first = (nominal.get('seeds') or [args.seed + 1])[0]  # the sim takes the next seed per reset
    result = {'task': args.task, 'episodes': args.episodes, 'seed': first,
              'family_seed': 0, 'nominal': nominal, 'families': rows,
              'model': args.model or 'shipped', 'through': 'ROS stack (up orange_juicer)',
              'launch_args': args.arg}
    title = f'{args.task} through the ROS stack: {args.model or "shipped model"}'
    (out / 'results.json').write_text(json.dumps(result, indent=2) + '\n')
    table = markdown_table(result, title).replace('mean steps', 'mean policy actions')
    (out / 'robustness.md').write_text(table)
    bar_plot(result, out / 'robustness.png', title)
    print(table)
    for r in [nominal, *rows]:
        if r.get('warning'):
            print(f'warning: {r["warning"]}', file=sys.stderr)
    failed = [r for r in [nominal, *rows] if r['error']]
    for r in failed:
        print(f'row failed: {r["error"]}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
