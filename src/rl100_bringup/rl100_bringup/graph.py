"""A node graph as data: the one description that both the launch file and ``up`` read.

A graph file (``config/<name>.graph.yaml``) lists launch arguments (default, description,
type), a parameters file keyed by node name, and the nodes. ``$(arg NAME)`` inside a node's
``parameters``, ``condition`` or ``unless`` is replaced by the argument's value converted to
its declared type, so ``control_rate:=25`` reaches a node as the double 25.0 that its
parameter declaration requires. An argument of type ``model`` names a policy file: empty means
the shipped model, ``none`` no model (see :mod:`rl100_bringup.models`); it is checked when the
graph is resolved, so a missing file stops the start-up with its name. Nothing is evaluated as
code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import os
import re

import yaml

ARG_PATTERN = re.compile(r'\$\(arg ([A-Za-z_][A-Za-z0-9_]*)\)')
PACKAGE = 'rl100_bringup'


class GraphError(ValueError):
    """A graph file or a launch argument is invalid; the message names the culprit."""


TYPES = {'str': str, 'float': float, 'int': int, 'bool': None, 'model': None}


@dataclass(frozen=True)
class Argument:
    name: str
    default: str
    description: str
    type: str = 'str'  # str, float, int, bool or model: what a whole-value $(arg NAME) becomes

    def __post_init__(self):
        if not self.description.strip():
            raise GraphError(f'launch argument {self.name!r} has no description')
        if self.type not in TYPES:
            raise GraphError(f'launch argument {self.name!r}: type must be one of {list(TYPES)}')
        if self.type != 'model':  # a model file is looked for when the graph is resolved
            self.convert(self.default)

    def convert(self, text: str):
        """The typed value of ``text`` (so ``control_rate:=25`` is the float 25.0)."""
        if self.type == 'model':
            from .models import ModelError, resolve_model
            try:
                return resolve_model(text)
            except ModelError as exc:
                raise GraphError(f'argument {self.name!r}: {exc}') from None
        if self.type == 'bool':
            if text.lower() not in ('true', 'false'):
                raise GraphError(f'argument {self.name!r} must be true or false, got {text!r}')
            return text.lower() == 'true'
        try:
            return TYPES[self.type](text)
        except ValueError:
            raise GraphError(
                f'argument {self.name!r} must be a {self.type}, got {text!r}') from None


@dataclass(frozen=True)
class NodeSpec:
    name: str
    package: str
    executable: str
    parameters: dict = field(default_factory=dict)
    remappings: dict = field(default_factory=dict)
    condition: str = 'true'  # start only when this is true
    unless: str = 'false'  # ... and this is false
    respawn: bool = False
    # says so on /rl100/ready once constructed (every node started through rl100_ros.run_node);
    # false for a node from elsewhere (e.g. realsense2_camera): up then waits only to see it
    announces_ready: bool = True

    def __post_init__(self):
        for key in ('name', 'package', 'executable'):
            if not getattr(self, key):
                raise GraphError(f'node entry {self.name or "?"!r} has no {key}')


@dataclass(frozen=True)
class ResolvedNode:
    """A node with every argument substituted: what gets started."""

    name: str
    package: str
    executable: str
    params_file: str
    parameters: dict
    remappings: dict
    respawn: bool
    announces_ready: bool = True


@dataclass(frozen=True)
class Graph:
    name: str
    arguments: dict  # name -> Argument
    params_file: str  # absolute path
    nodes: tuple  # of NodeSpec

    def resolve(self, overrides: dict | None = None) -> list:
        """Substitute arguments (defaults updated by ``overrides``) into the nodes to start."""
        values = {name: arg.default for name, arg in self.arguments.items()}
        for name, value in (overrides or {}).items():
            if name not in self.arguments:
                raise GraphError(
                    f'unknown argument {name!r} for graph {self.name!r}; '
                    f'known: {", ".join(sorted(self.arguments))}')
            values[name] = str(value)
        typed = {name: self.arguments[name].convert(text) for name, text in values.items()}
        started = []
        for node in self.nodes:
            if not _truthy(_substitute(node.condition, values, typed, node.name)):
                continue
            if _truthy(_substitute(node.unless, values, typed, node.name)):
                continue
            params = {k: _substitute(v, values, typed, node.name)
                      for k, v in node.parameters.items()}
            started.append(ResolvedNode(
                name=node.name, package=node.package, executable=node.executable,
                params_file=self.params_file, parameters=params,
                remappings=dict(node.remappings), respawn=node.respawn,
                announces_ready=node.announces_ready))
        return started


def _substitute(value, values: dict, typed: dict, where: str):
    """A whole ``$(arg X)`` becomes X's typed value; text around args is read as YAML."""
    if not isinstance(value, str):
        return value
    for name in ARG_PATTERN.findall(value):
        if name not in values:
            raise GraphError(f'node {where!r} uses undeclared argument $(arg {name})')
    whole = ARG_PATTERN.fullmatch(value.strip())
    if whole:
        return typed[whole.group(1)]
    text = ARG_PATTERN.sub(lambda m: values[m.group(1)], value)
    return yaml.safe_load(text) if text else ''


def _truthy(value) -> bool:
    if isinstance(value, bool):
        return value
    raise GraphError(f'condition must be true or false, got {value!r}')


def config_dir() -> str:
    """The installed ``share/rl100_bringup/config`` directory."""
    from ament_index_python.packages import get_package_share_directory
    return os.path.join(get_package_share_directory(PACKAGE), 'config')


# Fast DDS reads its default participant profile from here (Fast DDS 2.x, Humble and Jazzy;
# 3.x reads FASTDDS_DEFAULT_PROFILES_FILE and still honours this one)
DDS_PROFILES_ENV = 'FASTRTPS_DEFAULT_PROFILES_FILE'
DDS_PROFILES_FILE = 'fastdds.xml'


def dds_environment(environ=os.environ) -> dict:
    """Environment for a graph's processes: the DDS profile of ``config/fastdds.xml``.

    Its shared-memory segment carries full camera clouds and images (see the file). Empty when
    the user set a profile file already (either variable): theirs is kept.
    """
    if environ.get(DDS_PROFILES_ENV) or environ.get('FASTDDS_DEFAULT_PROFILES_FILE'):
        return {}
    return {DDS_PROFILES_ENV: os.path.join(config_dir(), DDS_PROFILES_FILE)}


def load(name_or_path: str) -> Graph:
    """Load ``config/<name>.graph.yaml`` (or a path to a graph file) and validate it."""
    if os.sep in name_or_path or name_or_path.endswith('.yaml'):
        path = os.path.abspath(name_or_path)
    else:
        path = os.path.join(config_dir(), f'{name_or_path}.graph.yaml')
    if not os.path.isfile(path):
        raise GraphError(f'no graph file {path}')
    with open(path, encoding='utf-8') as f:
        data = yaml.safe_load(f) or {}
    unknown = set(data) - {'arguments', 'params_file', 'nodes'}
    if unknown:
        raise GraphError(f'{path}: unknown top-level keys {sorted(unknown)}')
    try:
        arguments = {
            name: Argument(name=name, default=str(spec.get('default', '')),
                           description=str(spec.get('description', '')),
                           type=str(spec.get('type', 'str')))
            for name, spec in (data.get('arguments') or {}).items()}
        nodes = tuple(
            NodeSpec(**{k: (str(v) if k in ('condition', 'unless') else v) for k, v in e.items()})
            for e in data.get('nodes') or [])
    except TypeError as exc:
        raise GraphError(f'{path}: {exc}') from exc
    if not nodes:
        raise GraphError(f'{path}: no nodes')
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise GraphError(f'{path}: duplicate node names {names}')
    params_file = os.path.join(os.path.dirname(path), data.get('params_file', ''))
    if not os.path.isfile(params_file):
        raise GraphError(f'{path}: params_file {params_file} does not exist')
    graph_name = os.path.basename(path).removesuffix('.graph.yaml')
    return Graph(name=graph_name, arguments=arguments, params_file=params_file, nodes=nodes)


def parse_launch_args(items: list) -> dict:
    """Parse ``['use_sim:=false', 'rate:=20']`` into ``{'use_sim': 'false', 'rate': '20'}``."""
    out = {}
    for item in items:
        name, sep, value = item.partition(':=')
        if not sep or not name:
            raise GraphError(f'launch argument {item!r} is not NAME:=VALUE')
        out[name] = value
    return out
