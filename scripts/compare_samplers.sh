#!/usr/bin/env bash
# One diffusion checkpoint, two deployed DDIM samplers, the same evaluation episodes:
#   eta 0 (probability-flow DDIM)  against  eta 1 without step noise (each step's DDPM posterior mean).
#
#   scripts/compare_samplers.sh POLICY_JSON TASK OUT_DIR [EPISODES] [SEED] [-- extra rl100 eval args]
#
# Writes OUT_DIR/eta0.onnx, OUT_DIR/eta1.onnx (+ cards) and OUT_DIR/eval_eta{0,1}.json, then prints a table.
set -euo pipefail
POLICY="${1:?usage: compare_samplers.sh POLICY_JSON TASK OUT_DIR [EPISODES] [SEED] [-- eval args]}"
TASK="${2:?task}"
OUT="${3:?out dir}"
EPISODES="${4:-100}"
SEED="${5:-10000}"
shift $(( $# < 5 ? $# : 5 ))
[ "${1:-}" = "--" ] && shift
RL100="${RL100:-rl100}"
mkdir -p "$OUT"
for eta in 0 1; do
  [ -f "$OUT/eta$eta.onnx" ] || $RL100 export "$POLICY" --out "$OUT/eta$eta.onnx" --eta "$eta" --no-step-noise \
    --control-rate 10 > /dev/null
  [ -f "$OUT/eval_eta$eta.json" ] || $RL100 eval "$OUT/eta$eta.onnx" --task "$TASK" --episodes "$EPISODES" \
    --seed "$SEED" --threads 1 --json "$OUT/eval_eta$eta.json" "$@" > /dev/null
done
python - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
print("| deployed sampler | success | mean length | ONNX p50 (ms) |")
print("|---|---:|---:|---:|")
for eta, name in ((0, "DDIM eta 0"), (1, "eta 1, step means")):
    r = json.load(open(f"{out}/eval_eta{eta}.json"))
    print(f"| {name} | {r['success_rate']:.2f} | {r['mean_length']:.1f} | {r['latency']['p50_ms']:.1f} |")
PY
