#!/usr/bin/env bash
# Recipe for the juicing-place one-step policy (to be shipped as models/juicing_place_cm.onnx):
# scripted-expert demos with point clouds -> DP3-style diffusion-policy IL (DDIM teacher) ->
# consistency distillation -> ONNX. (Proprioception alone cannot see the orange: state-only IL
# scored 0-10%.) Not yet run to convergence: see BENCHMARKS.md / the issue notes.
#
#   scripts/train_juicing.sh RUN_DIR [IL_STEPS] [CM_STEPS] [DEVICE]
#
# Collection needs MuJoCo (rl100[sim]); training runs on CPU or CUDA (DEVICE: auto|cpu|cuda) and
# can run elsewhere on a copy of RUN_DIR/demos: set RL100_SKIP_COLLECT=1 there.
set -euo pipefail
RUN="${1:?usage: train_juicing.sh RUN_DIR [IL_STEPS] [CM_STEPS] [DEVICE]}"
IL_STEPS="${2:-20000}"
CM_STEPS="${3:-3000}"
DEVICE="${4:-auto}"
RL100="${RL100:-rl100}"
mkdir -p "$RUN"
if [ -z "${RL100_SKIP_COLLECT:-}" ]; then
  $RL100 collect --task juicing-place --episodes 100 --seed 1000 --skill 1.0 --obs state,points --n-points 512 \
    --out "$RUN/demos"
fi
$RL100 train-il --config il_points_small --dataset "$RUN/demos" --out "$RUN/il" --steps "$IL_STEPS" \
  --set train.device="$DEVICE" --set train.warmup_steps=$(( IL_STEPS < 500 ? IL_STEPS / 10 : 500 )) --no-progress
$RL100 distill --config distill_small --teacher "$RUN/il/policy.json" --dataset "$RUN/demos" --out "$RUN/cm" \
  --steps "$CM_STEPS" --set train.device="$DEVICE" --set train.warmup_steps=$(( CM_STEPS < 200 ? CM_STEPS / 10 : 200 )) \
  --no-progress
$RL100 export "$RUN/cm/policy.json" --out "$RUN/juicing_place_cm.onnx" --control-rate 10
