"""The graph file: substitution, typing, conditions, and errors that name the culprit."""

import textwrap

import pytest
from rl100_bringup import graph as graph_mod


def _write(tmp_path, body, params='n1:\n  ros__parameters: {}\n'):
    (tmp_path / 'p.yaml').write_text(params)
    path = tmp_path / 'g.graph.yaml'
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_orange_juicer_graph_defaults_and_overrides():
    graph = graph_mod.load('orange_juicer')
    expected = {'use_sim', 'model', 'control_rate', 'teleop_device', 'record_dir'}
    assert expected <= set(graph.arguments)
    assert all(arg.description for arg in graph.arguments.values())
    nodes = {n.name: n for n in graph.resolve({'model': 'none'})}
    assert {'policy_node', 'safety_node'} <= set(nodes)
    assert nodes['policy_node'].parameters['model_path'] == ''  # none: wait for LoadPolicy
    assert nodes['policy_node'].parameters['control_rate'] == 10.0  # typed, not '10.0'
    resolved = graph.resolve({'control_rate': '25', 'teleop_device': 'spacemouse',
                              'model': 'none'})
    nodes = {n.name: n for n in resolved}
    assert nodes['policy_node'].parameters['control_rate'] == 25.0
    assert isinstance(nodes['policy_node'].parameters['control_rate'], float)  # not int 25
    with pytest.raises(graph_mod.GraphError, match="'control_rate' must be a float, got 'fast'"):
        graph.resolve({'control_rate': 'fast', 'model': 'none'})
    assert nodes['safety_node'].parameters['teleop_device'] == 'spacemouse'
    assert nodes['policy_node'].params_file.endswith('orange_juicer.yaml')


def test_real_robot_graph_adds_the_camera_driver():
    graph = graph_mod.load('orange_juicer')
    assert 'camera' not in [n.name for n in graph.resolve({'model': 'none'})]
    real = [n.name for n in graph.resolve({'use_sim': 'false', 'model': 'none'})]
    assert 'camera' in real and 'franka_bridge' in real


def test_unknown_argument_is_named():
    with pytest.raises(graph_mod.GraphError, match="unknown argument 'contol_rate'"):
        graph_mod.load('orange_juicer').resolve({'contol_rate': '5'})


def test_conditions(tmp_path):
    path = _write(tmp_path, """
        arguments:
          use_sim: {default: 'true', description: sim or real, type: bool}
        params_file: p.yaml
        nodes:
          - {name: sim, package: a, executable: b, condition: $(arg use_sim)}
          - {name: real, package: a, executable: c, unless: $(arg use_sim)}
          - {name: always, package: a, executable: d}
        """)
    graph = graph_mod.load(path)
    assert [n.name for n in graph.resolve()] == ['sim', 'always']
    assert [n.name for n in graph.resolve({'use_sim': 'false'})] == ['real', 'always']
    with pytest.raises(graph_mod.GraphError, match="'use_sim' must be true or false"):
        graph.resolve({'use_sim': 'maybe'})


@pytest.mark.parametrize('body, message', [
    ("""
     arguments: {x: {default: '1'}}
     params_file: p.yaml
     nodes: [{name: n1, package: a, executable: b}]
     """, "argument 'x' has no description"),
    ("""
     params_file: p.yaml
     nodes: [{name: n1, package: a, executable: b, parameters: {r: $(arg rate)}}]
     """, r'undeclared argument \$\(arg rate\)'),
    ("""
     params_file: p.yaml
     nodes: [{name: n1, package: a, executable: b}, {name: n1, package: a, executable: c}]
     """, 'duplicate node names'),
    ("""
     params_file: missing.yaml
     nodes: [{name: n1, package: a, executable: b}]
     """, 'missing.yaml does not exist'),
    ("""
     params_file: p.yaml
     nodes: [{name: n1, package: a, executable: b, colour: red}]
     """, 'colour'),
    ("""
     params_file: p.yaml
     nodez: []
     """, 'unknown top-level keys'),
])
def test_invalid_graph_files_are_named(tmp_path, body, message):
    path = _write(tmp_path, body)
    with pytest.raises(graph_mod.GraphError, match=message):
        graph_mod.load(path).resolve()


def test_launch_arg_syntax():
    assert graph_mod.parse_launch_args(['a:=1', 'b:=']) == {'a': '1', 'b': ''}
    with pytest.raises(graph_mod.GraphError, match="'a=1' is not NAME:=VALUE"):
        graph_mod.parse_launch_args(['a=1'])
