"""Orange juicer: the rl100 node graph for the juicing-place task.

    ros2 launch rl100_bringup orange_juicer.launch.py use_sim:=true control_rate:=10.0

The graph (nodes, parameters, arguments with descriptions) is data in
config/orange_juicer.graph.yaml; where ROS 2 launch is missing, the same graph starts with
``python -m rl100_bringup.up orange_juicer``.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from rl100_bringup import graph as graph_mod

from launch import LaunchDescription

GRAPH = 'orange_juicer'


def _nodes(context, *args, **kwargs):
    graph = graph_mod.load(GRAPH)
    values = {name: LaunchConfiguration(name).perform(context) for name in graph.arguments}
    dds = graph_mod.dds_environment()  # the DDS profile up uses too (config/fastdds.xml)
    return [
        Node(
            package=node.package,
            executable=node.executable,
            name=node.name,
            parameters=[node.params_file, node.parameters],
            remappings=list(node.remappings.items()),
            respawn=node.respawn,
            additional_env=dds,
            output='screen',
            emulate_tty=True,
        )
        for node in graph.resolve(values)
    ]


def generate_launch_description():
    graph = graph_mod.load(GRAPH)
    declared = [
        DeclareLaunchArgument(arg.name, default_value=arg.default, description=arg.description)
        for arg in graph.arguments.values()
    ]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])
