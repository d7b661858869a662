"""The cell's calibration on running nodes: read and set through their parameter services.

``camera_pose`` (:func:`get_camera_pose`, :func:`set_camera_pose`) and the table's height
``table_dz`` (:func:`get_double`, :func:`set_double`: the policy node and the recorder).

The base-frame cloud is made by ``cloud_to_base`` on the robot (a double array) and by
``sim_robot`` in simulation (an 'x y z qx qy qz qw' string, empty for the simulated camera's
own pose). Both take a new value at run time, check it and refuse a bad one. These functions
speak both types; the transport is the caller's ``call(srv_type, service, request)``, which
returns the response or None when nobody answered in time (check_camera spins a node of its
own, the camera_check node waits on its running executor).
"""

from __future__ import annotations

import math

from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters

NAME = 'camera_pose'
# the nodes that make the base-frame cloud from a calibration: one of them runs in a graph
CLOUD_NODES = ('/cloud_to_base', '/sim_robot')
TABLE_DZ = 'table_dz'
TABLE_NODES = ('/policy_node', '/recorder_node')  # they take the table's height (table_dz)


def _node(name: str) -> str:
    return '/' + name.strip('/')


def pose_of(value: ParameterValue) -> list | None:
    """7 floats, [] for 'the simulated camera's own' (an empty string, all NaN), None: no pose."""
    if value.type == ParameterType.PARAMETER_DOUBLE_ARRAY:
        values = [float(v) for v in value.double_array_value]
    elif value.type == ParameterType.PARAMETER_STRING:
        values = [float(v) for v in value.string_value.replace(',', ' ').split()]
    else:
        return None
    if not values or all(math.isnan(v) for v in values):
        return []
    if len(values) != 7:
        raise ValueError(f'{NAME} has {len(values)} numbers, expected 7 (x y z qx qy qz qw)')
    return values


def get_camera_pose(call, node: str) -> tuple:
    """(parameter type, pose as in :func:`pose_of`) of ``node``; ValueError naming the problem."""
    node = _node(node)
    got = call(GetParameters, f'{node}/get_parameters', GetParameters.Request(names=[NAME]))
    if got is None:
        raise ValueError(f'{node} did not answer get_parameters (is it running?)')
    value = got.values[0] if got.values else ParameterValue()
    pose = pose_of(value)
    if pose is None:
        raise ValueError(f'{node} has no {NAME} parameter')
    return value.type, pose


def set_camera_pose(call, node: str, pose, kind: int | None = None) -> None:
    """Set ``pose`` (7 numbers) on ``node``; ValueError with the reason when it is not set.

    ``kind``: the parameter's type if known (else read first): a double array or a string.
    """
    node = _node(node)
    if kind is None:
        kind, _ = get_camera_pose(call, node)
    value = ParameterValue(type=kind)
    if kind == ParameterType.PARAMETER_DOUBLE_ARRAY:
        value.double_array_value = [float(v) for v in pose]
    elif kind == ParameterType.PARAMETER_STRING:
        value.string_value = ' '.join(f'{float(v):.6f}' for v in pose)
    else:
        raise ValueError(f'{node} has no {NAME} parameter to set')
    done = call(SetParameters, f'{node}/set_parameters',
                SetParameters.Request(parameters=[Parameter(name=NAME, value=value)]))
    if done is None:
        raise ValueError(f'{node} did not answer set_parameters')
    if not done.results[0].successful:
        raise ValueError(f'{node} refused the pose: {done.results[0].reason}')


def get_double(call, node: str, name: str) -> float:
    """The double parameter ``name`` of ``node``; ValueError naming the problem."""
    node = _node(node)
    got = call(GetParameters, f'{node}/get_parameters', GetParameters.Request(names=[name]))
    if got is None:
        raise ValueError(f'{node} did not answer get_parameters (is it running?)')
    if not got.values or got.values[0].type != ParameterType.PARAMETER_DOUBLE:
        raise ValueError(f'{node} has no double parameter {name}')
    return float(got.values[0].double_value)


def set_double(call, node: str, name: str, value: float) -> None:
    """Set the double parameter ``name`` on ``node``; ValueError with the reason if not set."""
    node = _node(node)
    request = SetParameters.Request(parameters=[Parameter(name=name, value=ParameterValue(
        type=ParameterType.PARAMETER_DOUBLE, double_value=float(value)))])
    done = call(SetParameters, f'{node}/set_parameters', request)
    if done is None:
        raise ValueError(f'{node} did not answer set_parameters')
    if not done.results[0].successful:
        raise ValueError(f'{node} refused {name} = {value}: {done.results[0].reason}')
