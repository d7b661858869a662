"""stack_loop: the loop's operator settings reach the graph's sim robot (no graph started here)."""

import json

from rl100_bringup import stack_loop, stack_session


class _FakeSession:
    """Stands in for StackSession: records how the graph would be started."""

    started = []

    def __init__(self, bags, graph, launch_args, **kwargs):
        self.started.append((graph, launch_args, kwargs))
        self.swaps = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_operator_settings_become_launch_arguments(monkeypatch, tmp_path):
    from rl100.loop import cli as loop_cli

    ran = []
    monkeypatch.setattr(stack_session, 'StackSession', _FakeSession)
    monkeypatch.setattr(loop_cli, 'run', lambda args, collector, evaluator: ran.append(args) or 0)
    argv = ['--policy', 'p.json', '--task', 'juicing-place', '--out', str(tmp_path),
            '--set', 'operator.stall_steps=30', '--set', 'expert_skill=0.8',
            '--launch-arg', 'sim_seed:=5']
    assert stack_loop.main(argv) == 0 and ran
    graph, launch_args, kwargs = _FakeSession.started[-1]
    assert graph == 'orange_juicer' and kwargs['operator'] is True
    assert launch_args[0] == 'sim_seed:=5'
    config = json.loads(launch_args[1].removeprefix('operator_config:='))
    assert config['stall_steps'] == 30 and 'closed_steps' in config
    assert launch_args[2] == 'operator_skill:=0.8'

    _FakeSession.started.clear()
    assert stack_loop.main([*argv, '--no-operator']) == 0
    graph, launch_args, kwargs = _FakeSession.started[-1]
    assert launch_args == ('sim_seed:=5',) and kwargs['operator'] is False


class _FakeEpisodes:
    """Stands in for StackSession.run: a results dict as the episode runner writes it."""

    def __init__(self, episodes):
        self.episodes = episodes

    def run(self, policy_onnx, out_dir, n_episodes, seed, operator=False):
        return {'meta': {}, 'episodes': self.episodes}


def test_collect_puts_the_operator_takeovers_into_the_episode_meta(monkeypatch, tmp_path):
    import rl100.ingest
    from rl100.loop.collectors import TAKEOVER_REASON, TAKEOVER_STEP

    calls = []

    def fake_ingest(bags, dataset, spec, **kwargs):
        calls.append((bags, kwargs))
        return {'ingested': [(str(b), 5) for b in bags]}

    monkeypatch.setattr(rl100.ingest, 'ingest', fake_ingest)
    card = tmp_path / 'm.card.json'
    card.write_text(json.dumps({'observation_spec': [{'key': 'observation.state',
                                                      'kind': 'lowdim'}]}))
    def episode(name, error='', takeover=None):
        return {'episode_id': name, 'bag': f'/b/{name}', 'error': error, 'takeover': takeover}

    episodes = [episode('e1', takeover={'step': 7, 'reason': 'stalled'}), episode('e2'),
                episode('e3', error='stuck', takeover={'step': 1, 'reason': 'x'})]
    collector = stack_loop.StackCollector(_FakeEpisodes(episodes), operator=True)
    collector.collect(tmp_path / 'm.onnx', tmp_path / 'out', 3, 1)
    (bags, kwargs), = calls
    assert [str(b) for b in bags] == ['/b/e1', '/b/e2']  # the errored episode is left out
    assert kwargs['episode_meta'] == {'e1': {TAKEOVER_STEP: 7, TAKEOVER_REASON: 'stalled'}}
