"""``rl100 info``: versions of the learning core and of the optional components present."""

from __future__ import annotations

import argparse
import importlib
import platform

import rl100

OPTIONAL = ("numpy", "torch", "onnxruntime", "onnx", "mujoco", "gymnasium", "metaworld", "safetensors")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    del args
    print(f"rl100 {rl100.__version__} on Python {platform.python_version()} ({platform.machine()})")
    for name in OPTIONAL:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            print(f"  {name:<12} missing ({exc.__class__.__name__})")
        else:
            print(f"  {name:<12} {getattr(module, '__version__', '?')}")
    return 0
