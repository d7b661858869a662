#!/usr/bin/env bash
# On a GPU machine (no package access, its own python3 with PyTorch): install the wheels carried
# from scripts/device_wheels.sh (no dependency resolution: what the image has is used as it is),
# then say what is there. The rl100 package runs from the tree, and MUJOCO_GL=egl renders on the
# GPU:
#
#   bash scripts/device_setup.sh [.device_wheels] [.gl]
#   export PYTHONPATH=$PWD/src/rl100 MUJOCO_GL=egl \
#     __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
#   python3 -m rl100.cli collect ...
#
# The image has no GL loader (libEGL): carry the Debian packages libegl1 libglvnd0 libopengl0
# libgl1 libglx0 libgles2 (apt-get download, amd64) in .gl/; they are unpacked into / here.
set -euo pipefail
WHEELS="${1:-.device_wheels}"
GL="${2:-.gl}"
python3 -m pip install -q --no-index --no-deps "$WHEELS"/*.whl
if compgen -G "$GL/*.deb" > /dev/null; then
  for f in "$GL"/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
export PYTHONPATH="$PWD/src/rl100${PYTHONPATH:+:$PYTHONPATH}" MUJOCO_GL=egl
VENDOR=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$VENDOR" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$VENDOR"
python3 - <<'PY'
import importlib
for name in ("torch", "numpy", "scipy", "safetensors", "onnx", "onnxruntime", "yaml", "tqdm",
             "matplotlib", "mujoco", "gymnasium", "gymnasium_robotics", "rl100"):
    try:
        m = importlib.import_module(name)
        print(f"{name} {getattr(m, '__version__', '')}")
    except Exception as exc:  # report every missing piece at once
        print(f"{name} MISSING: {exc.__class__.__name__}: {exc}")
import torch
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
