#!/usr/bin/env bash
# Recipe of the shipped juicing-place one-step policy (models/juicing_place_cm.onnx):
# 100 scripted-expert demos with point clouds -> DP3-style diffusion-policy imitation (DDIM-10
# teacher) in two stages -> consistency distillation -> ONNX with the point-cloud crop in the card.
# (Proprioception alone cannot see the orange: state-only imitation scored 0-10%.)
#
#   scripts/train_juicing.sh RUN_DIR [DEVICE]
#
# The shipped model was made exactly like this on one H200 (IL stage 1: 6,900 steps, stage 2
# continues from it for 7,500 steps at a lower peak LR -- the two stages fitted two GPU sessions;
# one 14,400-step run is the natural single-session equivalent). On CPU the IL stages take days.
# Collection needs MuJoCo (rl100[sim]); training can run elsewhere on a copy of RUN_DIR/demos:
# set RL100_SKIP_COLLECT=1 there. Stages whose output exists are skipped (rerun-safe).
set -euo pipefail
RUN="${1:?usage: train_juicing.sh RUN_DIR [DEVICE]}"
DEVICE="${2:-auto}"
RL100="${RL100:-rl100}"
mkdir -p "$RUN"
if [ -z "${RL100_SKIP_COLLECT:-}" ] && [ ! -f "$RUN/demos/dataset.json" ]; then
  $RL100 collect --task juicing-place --episodes 100 --seed 1000 --skill 1.0 --obs state,points --n-points 512 \
    --out "$RUN/demos"
fi
if [ ! -f "$RUN/il1/policy.json" ]; then
  $RL100 train-il --config il_points_small --dataset "$RUN/demos" --out "$RUN/il1" --steps 6900 \
    --set train.device="$DEVICE" --set train.warmup_steps=500 --no-progress
fi
if [ ! -f "$RUN/il/policy.json" ]; then
  $RL100 train-il --config il_points_small --dataset "$RUN/demos" --out "$RUN/il" --steps 7500 \
    --init "$RUN/il1/policy.json" --set train.lr=1.0e-4 --set train.warmup_steps=100 \
    --set train.device="$DEVICE" --no-progress
fi
if [ ! -f "$RUN/cm/policy.json" ]; then
  $RL100 distill --config distill_small --teacher "$RUN/il/policy.json" --dataset "$RUN/demos" --out "$RUN/cm" \
    --steps 1400 --set train.warmup_steps=100 --set train.device="$DEVICE" --no-progress
fi
$RL100 export "$RUN/il/policy.json" --out "$RUN/juicing_place_ddim.onnx" --control-rate 10
$RL100 export "$RUN/cm/policy.json" --out "$RUN/juicing_place_cm.onnx" --control-rate 10
# Evaluate as deployed: the one-step model replanning every tick with temporal ensembling.
$RL100 eval "$RUN/juicing_place_cm.onnx" --task juicing-place --episodes 100 --seed 10000 --threads 1 \
  --temporal-ensemble --json "$RUN/eval_cm.json"
