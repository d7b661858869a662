"""The ``rl100`` command line: one entry point, one module per subcommand.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand runs, so
``rl100 --help`` stays fast and a missing optional dependency (torch, mujoco) only
affects the subcommands that need it.

Bad input (a wrong path, an unknown task, a refused config value, a model card that does not
match its graph: ``ValueError`` and ``OSError`` from the subcommand) ends a command-line run with
``rl100 COMMAND: error: MESSAGE`` and exit status 2, not a traceback; ``RL100_TRACEBACK=1`` shows
the traceback. Called with ``argv`` (from Python), :func:`main` lets exceptions through.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("rl100.info", "print versions and the optional components available here"),
    "collect": ("rl100.sim.collect", "record scripted-expert demonstrations into a dataset"),
    "bench-sim": ("rl100.sim.bench", "measure simulation steps/s per task and camera modality"),
    "bench-experts": ("rl100.sim.bench_experts", "scripted-expert success rate against the skill knob"),
    "bench-camera-check": ("rl100.sim.bench_camera_check", "how well the camera check finds a knocked camera"),
    "ingest": ("rl100.ingest", "turn recorder episode bags (rosbag2 MCAP) into a training dataset"),
    "train-il": ("rl100.train.il", "imitation: train a diffusion policy on a dataset"),
    "distill": ("rl100.train.distill", "distil a one-step consistency policy from a DDIM teacher"),
    "offline-round": ("rl100.rl.offline_cli", "one offline RL round: IQL critics -> denoising PPO -> OPE gate"),
    "loop-sim": ("rl100.loop.cli", "iterative offline RL in simulation: collect -> offline round -> re-IL -> distil"),
    "online": ("rl100.rl.online_cli", "online RL in simulation: PPO + GAE over the denoising MDP (+ distillation)"),
    "export": ("rl100.export.cli", "export a policy to ONNX with its model card"),
    "eval": ("rl100.train.evaluate", "evaluate an exported policy in simulation through PolicyRuntime"),
    "robustness": ("rl100.robustness", "success per robustness family (pushes, shifted conditions, sensor faults)"),
    "bench-policy": ("rl100.policy.bench", "per-action latency: torch eager vs ONNX Runtime, DDIM-K vs CM-1"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rl100", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


USER_ERRORS = (ValueError, OSError)
"""what bad input raises: printed as one line at the command line (see the module docstring)"""


def main(argv: list[str] | None = None) -> int:
    command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    name = argv[0]
    if name not in COMMANDS:
        parser.error(f"unknown command {name!r}; choose from {', '.join(COMMANDS)}")
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    sub_parser = argparse.ArgumentParser(prog=f"rl100 {name}", description=help_text)
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except USER_ERRORS as exc:
        if not command_line or os.environ.get("RL100_TRACEBACK"):
            raise
        print(f"rl100 {name}: error: {exc.__class__.__name__}: {exc}\n"
              "(RL100_TRACEBACK=1 shows where it was raised)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
