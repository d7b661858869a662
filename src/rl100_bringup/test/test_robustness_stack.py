"""python -m rl100_bringup.robustness: one row's graph command and what is read back from it."""

import json
import subprocess
from types import SimpleNamespace

import pytest
from rl100_bringup import robustness

pytest.importorskip('rl100.robustness')


def _fake_graph(episodes, returncode=0):
    """A subprocess.run that plays the graph: writes --results-json as up would."""
    calls = []

    def run(cmd, stdout=None, stderr=None, timeout=None):
        calls.append(cmd)
        path = cmd[cmd.index('--results-json') + 1]
        with open(path, 'w') as f:
            json.dump({'meta': {}, 'episodes': episodes,
                       'summary': {'mean_cycle_time': 6.5, 'latency_p99_ms': 9.0}}, f)
        return SimpleNamespace(returncode=returncode)

    return run, calls


def test_a_row_passes_the_launch_args_and_counts_the_camera_checks(tmp_path, monkeypatch):
    episodes = [
        {'seed': 1, 'success': True, 'actions': 60,
         'camera_check': {'moved_mm': 18.0, 'corrected': True}},
        {'seed': 2, 'success': False, 'actions': 200,
         'camera_check': {'error': 'the camera moved 143 mm'}},
        {'seed': 3, 'success': True, 'actions': 70,
         'camera_check': {'moved_mm': 0.4, 'corrected': False}},
    ]
    run, calls = _fake_graph(episodes)
    monkeypatch.setattr(subprocess, 'run', run)
    row = robustness.stack_row('', 'camera_pose:moderate', 3, 0, tmp_path, 60.0, 0.0,
                               ('camera_check:=true', 'camera_correct:=true'))
    cmd = calls[0]
    assert 'disturbance:=camera_pose:moderate' in cmd and 'sim_seed:=0' in cmd
    assert cmd[-2:] == ['camera_check:=true', 'camera_correct:=true']
    assert (row['successes'], row['episodes'], row['error']) == (2, 3, '')
    assert row['camera_checks'] == {'checks': 3, 'corrected': 1,
                                    'refused': ['the camera moved 143 mm']}
    assert row['seeds'] == [1, 2, 3] and row['mean_length'] == pytest.approx(110.0)


def test_a_row_without_checks_or_with_missing_episodes_says_so(tmp_path, monkeypatch):
    run, _ = _fake_graph([{'seed': 1, 'success': True, 'actions': 60}], returncode=1)
    monkeypatch.setattr(subprocess, 'run', run)
    row = robustness.stack_row('', '', 2, 0, tmp_path, 60.0, 0.0)
    assert 'camera_checks' not in row
    assert row['error'] == 'graph exited with 1 after 1 of 2 episodes'


def test_arg_must_be_name_value(capsys):
    with pytest.raises(SystemExit):
        robustness.main(['--families', 'latency', '--arg', 'camera_check'])
    assert '--arg takes NAME:=VALUE' in capsys.readouterr().err
