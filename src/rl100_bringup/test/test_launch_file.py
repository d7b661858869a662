"""The launch file builds the same node set as ``up`` from the same graph.

ROS 2 ``launch`` / ``launch_ros`` are not installable where these tests run, so minimal
stand-ins with the same constructor signatures record what the launch file asks for; on a
ROS machine the real packages are used by ``ros2 launch``.
"""

import importlib.util
import os
import sys
import types

from ament_index_python.packages import get_package_share_directory
from rl100_bringup import graph as graph_mod


class _Recorder:

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:

    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


def _stand_in_modules():
    launch = types.ModuleType('launch')
    launch.LaunchDescription = _Recorder
    actions = types.ModuleType('launch.actions')
    actions.DeclareLaunchArgument = _Recorder
    actions.OpaqueFunction = _Recorder
    subs = types.ModuleType('launch.substitutions')
    subs.LaunchConfiguration = _LaunchConfiguration
    launch_ros = types.ModuleType('launch_ros')
    ros_actions = types.ModuleType('launch_ros.actions')
    ros_actions.Node = _Recorder
    return {'launch': launch, 'launch.actions': actions, 'launch.substitutions': subs,
            'launch_ros': launch_ros, 'launch_ros.actions': ros_actions}


def test_launch_file_declares_every_argument_and_starts_the_graph(monkeypatch):
    for name, module in _stand_in_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    path = os.path.join(get_package_share_directory('rl100_bringup'), 'launch',
                        'orange_juicer.launch.py')
    spec = importlib.util.spec_from_file_location('orange_juicer_launch', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    description = module.generate_launch_description()
    entities = description.args[0]
    declared = {e.args[0]: e.kwargs for e in entities if 'default_value' in e.kwargs}
    graph = graph_mod.load('orange_juicer')
    assert set(declared) == set(graph.arguments)
    assert all(kw['description'] for kw in declared.values())

    opaque = entities[-1]
    context = {name: arg.default for name, arg in graph.arguments.items()}
    context['control_rate'] = '20.0'
    context['model'] = 'none'  # the default (the shipped model) need not exist here
    nodes = opaque.kwargs['function'](context)
    expected = graph.resolve({'control_rate': '20.0', 'model': 'none'})
    assert [n.kwargs['name'] for n in nodes] == [n.name for n in expected]
    for launched, node in zip(nodes, expected, strict=True):
        assert launched.kwargs['executable'] == node.executable
        assert launched.kwargs['parameters'] == [node.params_file, node.parameters]
        assert launched.kwargs['additional_env'] == graph_mod.dds_environment()  # as up does
    assert nodes[0].kwargs['parameters'][1]['control_rate'] == 20.0
