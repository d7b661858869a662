"""Where a graph's ``model`` argument points: the shipped policy, a given file, or none.

The shipped policy is ``models/juicing_place_cm.onnx`` with its model card
``models/juicing_place_cm.card.json`` beside it. It is looked up in
``share/rl100_bringup/models/`` (where a robot image installs it) and in the ``models/``
directory of the colcon workspace this package was built from (found by walking up from the
install prefix and from this module's source file to the directory holding
``src/rl100_bringup``). Nothing is guessed beyond that: a missing file is an error naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

SHIPPED_MODEL = 'juicing_place_cm.onnx'
NO_MODEL = 'none'  # model:=none starts the policy node without a model (it waits for LoadPolicy)
PACKAGE = 'rl100_bringup'


class ModelError(ValueError):
    """The model argument names no usable file; the message says which file and what to do."""


def card_path(onnx: Path) -> Path:
    """``policy.onnx`` -> ``policy.card.json`` (the exporter's naming, rl100.export.card)."""
    return onnx.with_name(onnx.stem + '.card.json')


def _workspace_roots() -> list:
    starts = [Path(__file__).resolve().parent]
    try:
        from ament_index_python.packages import get_package_prefix
        starts.append(Path(get_package_prefix(PACKAGE)))
    except (ImportError, LookupError, ValueError):
        pass  # not installed through ament: the source tree is enough
    roots = []
    for start in starts:
        for directory in (start, *start.parents):
            if (directory / 'src' / PACKAGE / 'package.xml').is_file():
                if directory not in roots:
                    roots.append(directory)
                break
    return roots


def shipped_model_candidates() -> list:
    """Every place the shipped model is looked for, in order."""
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory(PACKAGE)) / 'models' / SHIPPED_MODEL)
    except (ImportError, LookupError, ValueError):
        pass
    candidates += [root / 'models' / SHIPPED_MODEL for root in _workspace_roots()]
    return candidates


def _check(onnx: Path) -> str:
    if not onnx.is_file():
        raise ModelError(f'no model file {onnx}')
    card = card_path(onnx)
    if not card.is_file():
        raise ModelError(f'model {onnx} has no model card {card} beside it (rl100 export '
                         'writes both)')
    return str(onnx)


def shipped_model() -> str:
    """Absolute path of the shipped policy; ModelError naming the missing file otherwise."""
    candidates = shipped_model_candidates()
    for onnx in candidates:
        if onnx.is_file():
            return _check(onnx)
    where = ', '.join(str(c) for c in candidates) or f'models/{SHIPPED_MODEL}'
    raise ModelError(
        f'the shipped model models/{SHIPPED_MODEL} is missing (looked for {where}); '
        'train and export it (models/README.md), or pass model:=PATH (an ONNX policy with its '
        f'.card.json beside it), or model:={NO_MODEL} to start without a policy')


def resolve_model(value: str) -> str:
    """The policy node's ``model_path`` for a ``model`` argument.

    ``''``: the shipped model; ``none``: ``''`` (no model, the policy node waits for
    LoadPolicy); anything else: that file, made absolute, which must exist with its card.
    """
    value = value.strip()
    if value == '':
        return shipped_model()
    if value.lower() == NO_MODEL:
        return ''
    return _check(Path(os.path.expanduser(value)).absolute())
