"""ONNX export of rl100 policies (:mod:`rl100.export.onnx_export`, needs torch + onnx) and model cards
(:mod:`rl100.export.card`, plain JSON: importable by the runtime without torch)."""
