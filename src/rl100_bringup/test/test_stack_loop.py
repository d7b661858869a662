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
