"""The RL-100 loop with its episodes run through the ROS stack (issue: closed loop).

``python -m rl100_bringup.stack_loop --policy IL.json --task juicing-place --rounds R ...`` takes
the arguments of ``rl100 loop-sim`` and runs the same resumable rounds (``rl100.loop``), except
that collection and evaluation go through the whole orange_juicer graph. By default one graph
stays up for the whole run (:class:`~rl100_bringup.stack_session.StackSession`): each round's
exported model is hot-swapped into the running policy node with LoadPolicy, the episodes run
with the recorder on (bags of the whole run in ``<out>/stack/bags``), and the sim robot's seed
is set per batch so every evaluation sees the same scenes. ``--fresh-graph`` starts a graph per
batch instead (``up --episodes``). Collected bags are turned into the round's dataset by
``rl100 ingest`` with the model's card, so the data has exactly the model's observations.
The online phase (``--set online_iterations=N``) trains on its own rollouts in the in-process
simulator, not through the graph (PPO needs many short batches of fresh episodes); its exports
are evaluated through the graph like every round's.

Collection runs with the scripted operator unless ``--no-operator``: the sim robot plays the
human (``rl100_sim.sim_operator``: it takes over near failure with the task's expert, through
the safety node as an absolute-pose teleop device, so the recorder flags those steps as
intervention, exactly as a person with a leader arm would produce them); evaluations run
without it. Its thresholds are the loop's ``operator.*`` settings and its expert's skill the
loop's ``expert_skill`` (graph arguments ``operator_config`` / ``operator_skill``); the sim
robot's takeover (step and reason) goes into each ingested episode's meta, as the in-process
collector writes it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys

from rl100.loop.collectors import ENV_STEPS, EPISODES, SUCCESS_RATE, TAKEOVER_REASON, TAKEOVER_STEP

ROS_DATASET = 'dataset'
BAGS = 'bags'
RESULTS = 'episodes.json'


class StackError(RuntimeError):
    """The graph could not run the episodes (the message has the tail of its output)."""


class StackEpisodes:
    """Runs N episodes of a model through ``python -m rl100_bringup.up GRAPH`` in a subprocess.

    Episode ``k`` uses env seed ``seed + k`` (the sim robot starts at ``sim_seed := seed - 1``
    and every reset takes the next seed). ``extra``: more launch arguments (``key:=value``).
    """

    def __init__(self, graph: str = 'orange_juicer', extra: tuple = (),
                 timeout_s: float = 3600.0, env: dict | None = None):
        self.graph = graph
        self.extra = tuple(extra)
        self.timeout_s = timeout_s
        self.env = env  # None: this process's environment

    def run(self, policy_onnx: Path, out_dir: Path, n_episodes: int, seed: int,
            operator: bool = False) -> dict:
        """``operator``: the sim robot's scripted operator watches the episodes."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        results = out_dir / RESULTS
        cmd = [sys.executable, '-m', 'rl100_bringup.up', self.graph,
               f'model:={Path(policy_onnx).resolve()}',
               f'record_dir:={(out_dir / BAGS).resolve()}',
               f'sim_seed:={seed - 1}', *self.extra,
               *(('scripted_operator:=true', 'teleop_device:=pose') if operator else ()),
               '--episodes', str(n_episodes), '--results-json', str(results)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s,
                                  env=dict(self.env if self.env is not None else os.environ))
        except subprocess.TimeoutExpired as exc:
            raise StackError(f'{self.graph}: {n_episodes} episodes did not finish within '
                             f'{self.timeout_s:.0f} s') from exc
        (out_dir / 'up.log').write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not results.is_file():
            tail = '\n'.join((proc.stdout + proc.stderr).splitlines()[-15:])
            raise StackError(
                f'{self.graph} exited with {proc.returncode} running {policy_onnx}:\n{tail}')
        return json.loads(results.read_text())


def _summary(results: dict, n_episodes: int) -> dict:
    """``up --results-json`` content -> the loop's evaluation metrics."""
    episodes = results.get('episodes') or []
    if len(episodes) != n_episodes:
        raise StackError(f'{len(episodes)} of {n_episodes} episodes ran: {results.get("error")}')
    steps = sum(int(e.get('actions', 0)) for e in episodes)
    return {SUCCESS_RATE: float(results['summary']['success_rate']), EPISODES: n_episodes,
            ENV_STEPS: steps}


class StackCollector:
    """``rl100.loop`` Collector + Evaluator over the ROS stack."""

    def __init__(self, episodes=None, operator: bool = False):
        """Collect / evaluate with ``episodes``.

        ``episodes``: a StackEpisodes (a graph per batch) or a StackSession (one graph);
        ``operator``: collect with the scripted operator (evaluations never have it).
        """
        self.episodes = episodes or StackEpisodes()
        self.operator = bool(operator)

    def collect(self, policy_onnx: Path, out_dir: Path, n_episodes: int, seed: int) -> Path:
        from rl100.ingest import ingest, IngestSpec
        from rl100.ingest_points import PointsPreprocessing

        results = self.episodes.run(policy_onnx, out_dir, n_episodes, seed,
                                    operator=self.operator)
        recorded = [e for e in results.get('episodes', []) if e.get('bag') and not e.get('error')]
        bags = [e['bag'] for e in recorded]
        # why the operator took over is the sim robot's knowledge, not the bag's: into the meta
        takeovers = {e['episode_id']: {TAKEOVER_STEP: e['takeover']['step'],
                                       TAKEOVER_REASON: e['takeover']['reason']}
                     for e in recorded if e.get('takeover')}
        if not bags:
            raise StackError(f'{out_dir}: no episode was recorded: {results.get("meta")}')
        card = json.loads(Path(policy_onnx).with_suffix('.card.json').read_text())
        has_points = any(o.get('kind') == 'points' for o in card.get('observation_spec', []))
        spec = IngestSpec(points=PointsPreprocessing.from_card(card) if has_points else None,
                          points_seed=seed)
        dataset = Path(out_dir) / ROS_DATASET
        report = ingest([Path(b) for b in bags], dataset, spec, episode_meta=takeovers)
        if not report['ingested']:
            raise StackError(f'{out_dir}: no episode could be ingested: {report}')
        return dataset

    def evaluate(self, policy_onnx: Path, n_episodes: int, seed: int) -> dict:
        out_dir = Path(policy_onnx).parent / f'stack_eval_{Path(policy_onnx).stem}_{seed}'
        results = self.episodes.run(policy_onnx, out_dir, n_episodes, seed)
        return _summary(results, n_episodes)


def main(argv=None) -> int:
    from rl100.loop import cli as loop_cli

    parser = argparse.ArgumentParser(
        prog='python -m rl100_bringup.stack_loop',
        description='the RL-100 loop with episodes run through the ROS stack (rl100 loop-sim '
                    "arguments; the scripted operator is the sim robot's, with the loop's "
                    'operator.* settings and expert_skill)')
    loop_cli.add_arguments(parser)
    parser.add_argument('--graph', default='orange_juicer', help='bringup graph to run')
    parser.add_argument('--launch-arg', action='append', default=[], metavar='KEY:=VALUE',
                        help='extra launch argument for every run of the graph')
    parser.add_argument('--fresh-graph', action='store_true',
                        help='start a new graph for every collection and evaluation instead of '
                        'hot-swapping models into one that stays up')
    args = parser.parse_args(argv)
    cfg = loop_cli.config_from_args(args)  # fails here on a bad --set, before a graph starts
    operator = cfg.operator is not None
    launch_args = tuple(args.launch_arg)
    if operator:  # the loop's operator settings reach the sim robot's operator
        launch_args += (f'operator_config:={json.dumps(cfg.operator)}',
                        f'operator_skill:={cfg.expert_skill}')
    if args.fresh_graph:
        stack = StackCollector(StackEpisodes(args.graph, launch_args), operator)
        return loop_cli.run(args, stack, stack)
    from .stack_session import StackSession

    out = Path(args.out or 'runs/loop') / 'stack'
    with StackSession(out / BAGS, args.graph, launch_args,
                      log_path=out / 'graph.log', operator=operator) as session:
        stack = StackCollector(session, operator)
        code = loop_cli.run(args, stack, stack)
        print(f'[stack_loop] {session.swaps} LoadPolicy swaps into one graph', flush=True)
        return code

if __name__ == '__main__':
    raise SystemExit(main())
