"""``python -m rl100_bringup.up``: the launch-free supervisor, real node processes, real DDS."""

import signal
import subprocess
import sys
import textwrap
import time

import pytest

UP = [sys.executable, '-m', 'rl100_bringup.up']


def _run(args, env, timeout=90):
    return subprocess.run(UP + args, env=env, capture_output=True, text=True, timeout=timeout)


def test_graph_comes_up_and_stops_cleanly(ros_env, tmp_path):
    result = _run(['orange_juicer', 'model:=none', f'record_dir:={tmp_path}', '--duration', '2'],
                  ros_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "graph 'orange_juicer' up: policy_node, safety_node, recorder_node" in result.stdout
    assert 'policy_node=0, safety_node=0, recorder_node=0' in result.stdout
    assert '[policy_node]' in result.stdout  # node output is forwarded, prefixed


def test_sigint_is_forwarded_to_every_node(ros_env, tmp_path):
    proc = subprocess.Popen(UP + ['orange_juicer', 'model:=none', f'record_dir:={tmp_path}'],
                            env=ros_env,
                            text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "graph 'orange_juicer' up" in line or not line:
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    text = ''.join(lines) + out
    assert proc.returncode == 0, text
    assert 'policy_node=0, safety_node=0, recorder_node=0' in text


def test_bad_launch_argument_fails_with_its_name(ros_env):
    result = _run(['orange_juicer', 'control_rat:=5'], ros_env)
    assert result.returncode == 2
    assert "unknown argument 'control_rat'" in result.stderr


def test_a_node_that_dies_fails_the_graph_naming_it(ros_env, tmp_path):
    # control_rate 0 is refused by the policy node at start-up
    result = _run(['orange_juicer', 'model:=none', 'control_rate:=0', f'record_dir:={tmp_path}',
                   '--ready-timeout', '20'], ros_env)
    assert result.returncode == 1
    assert 'exited unexpectedly with code 1' in result.stderr
    assert 'failed to start: ValueError: control_rate must be > 0 Hz, got 0.0' in result.stdout
    assert 'Traceback' not in result.stdout


def test_missing_package_is_named(ros_env, tmp_path):
    (tmp_path / 'p.yaml').write_text('x:\n  ros__parameters: {}\n')
    graph = tmp_path / 'g.graph.yaml'
    graph.write_text(textwrap.dedent("""
        params_file: p.yaml
        nodes: [{name: x, package: rl100_no_such_package, executable: x}]
        """))
    result = _run([str(graph)], ros_env)
    assert result.returncode == 2
    assert "package 'rl100_no_such_package' is not installed" in result.stderr


def test_show_args_lists_descriptions(ros_env):
    result = _run(['orange_juicer', '--show-args'], ros_env)
    assert result.returncode == 0
    assert "'control_rate':" in result.stdout and 'Hz' in result.stdout


def test_missing_model_file_is_named_before_anything_starts(ros_env, tmp_path):
    result = _run(['orange_juicer', f'model:={tmp_path}/nope.onnx'], ros_env)
    assert result.returncode == 2
    assert f"argument 'model': no model file {tmp_path}/nope.onnx" in result.stderr
    (tmp_path / 'no_card.onnx').write_bytes(b'onnx')
    result = _run(['orange_juicer', f'model:={tmp_path}/no_card.onnx'], ros_env)
    assert result.returncode == 2 and 'no_card.card.json beside it' in result.stderr
    assert '[up] started' not in result.stdout


@pytest.mark.parametrize('args, message', [
    (['model:=none', '--episodes', '2'], '--episodes needs a policy'),
    (['use_sim:=false', 'model:=none', '--episodes', '2'], '--episodes needs the simulated robot'),
    (['model:=none', '--episodes', '-1'], '--episodes must be >= 0'),
])
def test_episodes_need_a_simulated_graph_with_a_policy(ros_env, args, message):
    result = _run(['orange_juicer', *args], ros_env)
    assert result.returncode == 2 and message in result.stderr
