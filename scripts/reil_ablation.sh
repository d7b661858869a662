#!/usr/bin/env bash
# Re-imitation ablation on one round of a Meta-World loop run (scripts/loop_metaworld.sh): the round's
# re-imitation dataset (demos + successful rollouts + intervention segments) is learned again from the run's IL
# policy with each given intervention_share (the fraction of every batch drawn from operator-controlled windows;
# 0: uniform), or without the segments (SHARE `none`: the round's merged data with the loop's
# reil_interventions=false), exported as DDIM and evaluated on the loop's evaluation seeds. Prints success and the
# seeds fixed / broken against round 0's DDIM evaluation.
#
#   scripts/reil_ablation.sh RUN_DIR ROUND SHARE [SHARE ...]
#   e.g. scripts/reil_ablation.sh runs/op4 1 none 0 0.5
#
# Environment: STEPS (2000), LR (1e-4), SEED (1), EPISODES (100), EVAL_SEED (1000000, the loop's), TASK (push-v3),
# REFIT=1 (fit the normaliser to the round's data instead of keeping the IL policy's: train.refit_normalizer).
# A share whose eval.json exists is not rerun; a SEED other than 1 writes to share_S_seedN, REFIT=1 to share_S_refit.
set -euo pipefail
USAGE="usage: reil_ablation.sh RUN_DIR ROUND SHARE [SHARE ...]"
RUN="${1:?$USAGE}"
ROUND="$(printf %03d "${2:?$USAGE}")"
shift 2
[ $# -ge 1 ] || { echo "$USAGE" >&2; exit 2; }
RL100="${RL100:-rl100}"
DATA="$RUN/loop/round_$ROUND/reil/data"
[ -f "$DATA/dataset.json" ] || { echo "no re-imitation dataset at $DATA" >&2; exit 1; }
TAG=""; [ "${SEED:-1}" = 1 ] || TAG="_seed$SEED"
[ "${REFIT:-0}" = 1 ] && TAG="${TAG}_refit"
for share in "$@"; do
  out="$RUN/reil_ablation/round_$ROUND/share_$share$TAG"
  if [ ! -f "$out/eval.json" ]; then
    data="$DATA" s="$share"
    if [ "$share" = none ]; then
      data="$out/data" s=0
      build='import sys; from pathlib import Path; from rl100.loop.steps import reil_dataset as r
print(r(Path(sys.argv[1]), Path(sys.argv[2]), False, False, interventions=False))'
      [ -f "$data/dataset.json" ] || python -c "$build" "$RUN/loop/round_$ROUND/merge/data" "$data"
    fi
    $RL100 train-il --config il_state_small --dataset "$data" --out "$out/il" --init "$RUN/il/policy.json" \
      --steps "${STEPS:-2000}" --set train.obs_keys=[observation.env_state] --set policy.down_dims=[32,64,128] \
      --set train.batch_size=128 --set train.lr="${LR:-1e-4}" --set train.warmup_steps=100 \
      --set train.seed="${SEED:-1}" --set train.intervention_share="$s" \
      --set train.refit_normalizer="$([ "${REFIT:-0}" = 1 ] && echo true || echo false)" --set train.device=cpu --no-progress
    $RL100 export "$out/il/policy.json" --out "$out/ddim.onnx"
    $RL100 eval "$out/ddim.onnx" --task "metaworld/${TASK:-push-v3}" --episodes "${EPISODES:-100}" \
      --seed "${EVAL_SEED:-1000000}" --threads 1 --workers 1 --json "$out/eval.json"
  fi
done
python - "$RUN/loop/round_000/evaluate/eval.json" "$RUN/reil_ablation/round_$ROUND" "$TAG" "$@" <<'PY'
import json, sys
from pathlib import Path
base = json.loads(Path(sys.argv[1]).read_text())["ddim"]["successes"]
print(f"round 0 DDIM: {sum(base) / len(base):.2f}")
for share in sys.argv[4:]:
    r = json.loads((Path(sys.argv[2]) / f"share_{share}{sys.argv[3]}" / "eval.json").read_text())
    s = r["successes"]
    fixed = sum(1 for a, b in zip(base, s) if b and not a)
    broken = sum(1 for a, b in zip(base, s) if a and not b)
    print(f"intervention_share {share}{sys.argv[3]}: DDIM {r['success_rate']:.2f}, mean length {sum(r['lengths']) / len(s):.1f}, "
          f"seeds fixed {fixed} / broken {broken} vs round 0")
PY
