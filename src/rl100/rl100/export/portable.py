"""Run exported graphs on the ONNX Runtime versions robots have (the Humble images: Python 3.10).

The fast export graph (:mod:`rl100.export.graph_ops`) writes a group norm as one ``LayerNormalization``
whose scale and bias are ``(G, N)`` on a ``(B, G, N)`` input (``axis`` 2): NumPy broadcasting, as the
ONNX function definition allows. ONNX Runtime before 1.24 insists on ``scale.shape == X.shape[axis:]``
and refuses the model at its first run ("Size of scale and bias must match X.shape[axis:]"), and the
newest ONNX Runtime wheels for CPython 3.10 are 1.23. :func:`split_group_layer_norms` rewrites such a
node into ``LayerNormalization`` with a 1-D unit scale, then ``Mul`` by the scale and ``Add`` of the
bias: the same function in float32 up to rounding, but ~14 % slower on ONNX Runtime 1.32 (shipped model:
p50 5.3 -> 6.0 ms), so exports keep the fused form and :class:`rl100.runtime.PolicyRuntime` rewrites the
graph in memory when its ONNX Runtime needs it (:func:`needs_portable_graph`; the file and its sha256
stay as exported). ``python -m rl100.export.portable MODEL.onnx`` rewrites a file in place (card sha256
updated) for other consumers of the graph.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np


def split_group_layer_norms(model) -> int:
    """Rewrite every ``LayerNormalization`` whose scale initializer has more than one dimension; returns how many.

    ``model``: an ``onnx.ModelProto``, changed in place.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    identity = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}  # deduplicated weights

    def initializer(name: str):
        while name not in inits and name in identity:
            name = identity[name]
        return inits.get(name)

    nodes, count = [], 0
    for node in graph.node:
        scale = initializer(node.input[1]) if node.op_type == "LayerNormalization" and len(node.input) > 1 else None
        if scale is None or len(scale.dims) < 2:
            nodes.append(node)
            continue
        n = int(scale.dims[-1])
        dtype = numpy_helper.to_array(scale).dtype
        unit = f"{node.name or node.output[0]}_unit_scale"
        graph.initializer.append(numpy_helper.from_array(np.ones(n, dtype=dtype), unit))
        normed = f"{node.output[0]}_normed"
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        nodes.append(helper.make_node("LayerNormalization", [node.input[0], unit], [normed] + list(node.output[1:]),
                                      name=f"{node.name}_unit", **attrs))
        has_bias = len(node.input) > 2 and node.input[2]
        scaled = f"{node.output[0]}_scaled" if has_bias else node.output[0]
        nodes.append(helper.make_node("Mul", [normed, node.input[1]], [scaled], name=f"{node.name}_scale"))
        if has_bias:
            nodes.append(helper.make_node("Add", [scaled, node.input[2]], [node.output[0]], name=f"{node.name}_bias"))
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
        onnx.checker.check_model(model)
    return count


PORTABLE_FROM = (1, 24)  # the first ONNX Runtime that runs the fused group norm


def needs_portable_graph(ort_version: str) -> bool:
    """True for an ONNX Runtime version (``"1.20.1"``) older than :data:`PORTABLE_FROM`."""
    try:
        major, minor = (int(part) for part in ort_version.split(".")[:2])
    except ValueError:
        return True  # an unknown build: the rewritten graph runs everywhere
    return (major, minor) < PORTABLE_FROM


def portable_bytes(model_bytes: bytes, name: str = "model") -> bytes:
    """A serialized model with its group norms rewritten (:func:`split_group_layer_norms`)."""
    try:
        import onnx
    except ImportError as exc:
        raise RuntimeError(f"{name}: this ONNX Runtime (< {'.'.join(map(str, PORTABLE_FROM))}) needs the graph's "
                           f"group norms rewritten, which needs the onnx package (pip install onnx)") from exc
    model = onnx.load_from_string(model_bytes)
    return model_bytes if split_group_layer_norms(model) == 0 else model.SerializeToString()


def make_portable(onnx_path: str | os.PathLike) -> int:
    """Rewrite the model file in place (atomically); returns the number of nodes rewritten."""
    import onnx

    path = Path(onnx_path)
    model = onnx.load(str(path))
    count = split_group_layer_norms(model)
    if count:
        tmp = path.with_name(path.name + ".tmp")
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    return count


def main(argv: list[str] | None = None) -> int:
    from rl100.export.card import CardError, card_path, read_card, sha256_file, write_card

    parser = argparse.ArgumentParser(prog="python -m rl100.export.portable", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="exported .onnx policy; its .card.json beside it gets the new sha256")
    args = parser.parse_args(argv)
    path = Path(args.model)
    try:
        card = read_card(card_path(path))
    except (OSError, ValueError, CardError) as exc:
        print(f"portable: no usable card beside {path}: {exc}", file=sys.stderr)
        return 2
    if not path.is_file() or card["sha256"] != sha256_file(path):
        print(f"portable: {path} is missing or does not match its card's sha256; not touching it", file=sys.stderr)
        return 2
    count = make_portable(path)
    card["sha256"] = sha256_file(path)
    write_card(card, path)
    print(f"{path}: {count} LayerNormalization node(s) rewritten; sha256 {card['sha256']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
