#!/usr/bin/env bash
# Imitation baseline on a Meta-World v3 task, CPU-sized: 50 scripted-policy demos with Meta-World's
# own 39-d state -> small diffusion policy (U-Net 32-64-128, DDIM-10 teacher) -> consistency
# distillation -> ONNX -> 100 evaluation episodes of each, chunked and with temporal ensembling.
#
#   scripts/imitate_metaworld.sh TASK RUN_DIR [IL_STEPS] [CM_STEPS]     e.g. push-v3 runs/mw_push
#
# Stages whose output exists are skipped, so an interrupted run continues.
set -euo pipefail
TASK="${1:?usage: imitate_metaworld.sh TASK RUN_DIR [IL_STEPS] [CM_STEPS]}"
RUN="${2:?usage: imitate_metaworld.sh TASK RUN_DIR [IL_STEPS] [CM_STEPS]}"
IL_STEPS="${3:-4000}"
CM_STEPS="${4:-1000}"
RL100="${RL100:-rl100}"
[ -f "$RUN/demos/dataset.json" ] || $RL100 collect --task "metaworld/$TASK" --episodes 50 --seed 1000 --skill 1.0 \
  --obs state,env_state --out "$RUN/demos"
[ -f "$RUN/il/policy.json" ] || $RL100 train-il --config il_state_small --dataset "$RUN/demos" --out "$RUN/il" \
  --steps "$IL_STEPS" --set train.obs_keys=[observation.env_state] --set policy.down_dims=[32,64,128] \
  --set train.batch_size=128 --set train.warmup_steps=200 --no-progress
[ -f "$RUN/cm/policy.json" ] || $RL100 distill --config distill_small --teacher "$RUN/il/policy.json" \
  --dataset "$RUN/demos" --out "$RUN/cm" --steps "$CM_STEPS" --set train.batch_size=128 \
  --set train.warmup_steps=100 --no-progress
$RL100 export "$RUN/il/policy.json" --out "$RUN/ddim.onnx" --control-rate 10 > /dev/null
$RL100 export "$RUN/cm/policy.json" --out "$RUN/cm.onnx" --control-rate 10 > /dev/null
for m in ddim cm; do
  $RL100 eval "$RUN/$m.onnx" --task "metaworld/$TASK" --episodes 100 --seed 10000 --threads 1 \
    --json "$RUN/eval_${m}_chunk.json" > /dev/null
  $RL100 eval "$RUN/$m.onnx" --task "metaworld/$TASK" --episodes 100 --seed 10000 --threads 1 \
    --temporal-ensemble --json "$RUN/eval_${m}_te.json" > /dev/null
done
python -c "
import json, sys
for m in ('ddim', 'cm'):
    for mode in ('chunk', 'te'):
        d = json.load(open(f'$RUN/eval_{m}_{mode}.json'))
        print(f'{m:5s} {mode:6s} success {d[\"success_rate\"]:.2f}  mean length {d[\"mean_length\"]:.1f}')
"
