"""Message definitions for the bags: a rosbags typestore that knows rl100_msgs (pure Python).

The standard messages come from rosbags' built-in store of the distro; the stack's own types
(and any other type the store lacks, e.g. franka_msgs on the robot) are parsed from the
``.msg`` files installed in ``<share>/<package>/msg`` (found through the ament index, so the
definitions embedded in a bag are exactly those of the running workspace).
"""

from __future__ import annotations

import os
from pathlib import Path

from rosbags.typesys import get_types_from_msg, get_typestore, Stores
from rosbags.typesys.store import Typestore

DEFAULT_STORE = Stores.ROS2_JAZZY  # Humble differs only in types rl100 does not record


class UnknownTypeError(LookupError):
    """A message type neither the typestore nor any installed ``.msg`` file defines."""


def package_msg_dir(package: str) -> Path | None:
    """``<share>/<package>/msg`` from the ament index, or None when the package is not found."""
    try:
        from ament_index_python.packages import get_package_share_directory
        path = Path(get_package_share_directory(package)) / 'msg'
    except (ImportError, LookupError, ValueError):
        return None
    return path if path.is_dir() else None


def _referenced_types(node: object) -> set[str]:
    """Type names (``pkg/msg/Name``) referenced anywhere in a rosbags parse tree."""
    if isinstance(node, str):
        return {node} if node.count('/') == 2 and '/msg/' in node else set()
    if isinstance(node, (tuple, list)):
        out: set[str] = set()
        for item in node:
            out |= _referenced_types(item)
        return out
    return set()


def ensure_type(typestore: Typestore, msgtype: str,
                msg_dirs: dict[str, Path] | None = None) -> None:
    """Register ``msgtype`` (and the types it uses) in ``typestore`` if it is not known yet.

    ``msg_dirs`` maps a package name to its ``msg`` directory and overrides the ament index.
    Raises UnknownTypeError naming the type and where it was looked for.
    """
    pending = [msgtype]
    found: dict = {}
    while pending:
        name = pending.pop()
        if name in typestore.fielddefs or name in found:
            continue
        parts = name.split('/')
        if len(parts) != 3 or parts[1] != 'msg':
            raise UnknownTypeError(f'{name!r} is not a message type name (pkg/msg/Name)')
        pkg, _, short = parts
        msg_dir = (msg_dirs or {}).get(pkg) or package_msg_dir(pkg)
        path = msg_dir / f'{short}.msg' if msg_dir else None
        if path is None or not path.is_file():
            raise UnknownTypeError(
                f'message type {name!r} is unknown: not in the rosbags {DEFAULT_STORE.name} store '
                f'and no {short}.msg in {msg_dir or f"an installed {pkg} package"}')
        parsed = get_types_from_msg(path.read_text(encoding='utf-8'), name)
        found.update(parsed)
        pending.extend(_referenced_types(list(parsed.values())) - set(found))
    if found:
        typestore.register(found)


def build_typestore(store: Stores = DEFAULT_STORE,
                    msg_dirs: dict[str, str | os.PathLike] | None = None) -> Typestore:
    """The distro's standard types plus every ``.msg`` of rl100_msgs (and of ``msg_dirs``)."""
    typestore = get_typestore(store)
    dirs = {k: Path(v) for k, v in (msg_dirs or {}).items()}
    if 'rl100_msgs' not in dirs:
        found = package_msg_dir('rl100_msgs')
        if found is None:
            raise UnknownTypeError('rl100_msgs is not installed (no share/rl100_msgs/msg in the '
                                   'ament index): source the workspace or pass msg_dirs')
        dirs['rl100_msgs'] = found
    for pkg, msg_dir in dirs.items():
        for path in sorted(msg_dir.glob('*.msg')):
            ensure_type(typestore, f'{pkg}/msg/{path.stem}', dirs)
    return typestore
