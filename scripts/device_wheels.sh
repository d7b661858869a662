#!/usr/bin/env bash
# Wheels a GPU machine without package access needs to run the simulator there (collect demos,
# evaluate) beside its own PyTorch: MuJoCo, gymnasium(-robotics) and their small pure-Python
# dependencies, for that machine's Python (3.12 by default). Run here; the folder is git-ignored
# and travels with a device run when named in its carry list (about 37 MB):
#
#   scripts/device_wheels.sh [.device_wheels] [3.12]
#
# then on the machine: scripts/device_setup.sh .device_wheels
set -euo pipefail
OUT="${1:-.device_wheels}"
PY="${2:-3.12}"
mkdir -p "$OUT"
PIP="${PIP:-.venv/bin/pip}"
$PIP download --no-deps --only-binary=:all: --python-version "$PY" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  -d "$OUT" -q mujoco==3.3.0 gymnasium==1.4.0 gymnasium-robotics==1.4.2 farama-notifications cloudpickle \
  pyopengl absl-py etils glfw pyyaml tqdm
du -sh "$OUT"
