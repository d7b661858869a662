#!/usr/bin/env bash
# The OPE gate against a deliberately harmful update, on a Meta-World task, CPU-sized.
#
#   scripts/gate_ablation.sh RUN_DIR [TASK] [IL_STEPS] [PPO_ITERS]      e.g. runs/gate pick-place-v3
#
# 1. demos: 50 episodes of Meta-World's scripted policy (39-d state) -> small DDIM policy (IL);
# 2. offline data: the same 50 expert episodes plus 50 of a novice (skill 0.3, about half of them
#    failures), with sparse success rewards;
# 3. two offline rounds from the IL policy on that data, identical but for the sign of the
#    advantages: +1 (the real update) and -1 (a deliberately harmful one); each keeps the updated
#    policy the gate judged (candidate.*) whatever the verdict;
# 4. the IL policy and both candidates exported and evaluated for 100 episodes (8-step chunks,
#    env seeds 10000..10099): the true success the gate's verdict is checked against.
# Stages whose output exists are skipped, so an interrupted run continues.
set -euo pipefail
RUN="${1:?usage: gate_ablation.sh RUN_DIR [TASK] [IL_STEPS] [PPO_ITERS]}"
TASK="${2:-pick-place-v3}"
IL_STEPS="${3:-2000}"
PPO_ITERS="${4:-30}"
RL100="${RL100:-rl100}"
OBS=state,env_state
[ -f "$RUN/demos/dataset.json" ] || $RL100 collect --task "metaworld/$TASK" --episodes 50 --seed 1000 \
  --skill 1.0 --obs "$OBS" --out "$RUN/demos"
if [ ! -f "$RUN/data/.done" ]; then
  rm -rf "$RUN/data"
  $RL100 collect --task "metaworld/$TASK" --episodes 50 --seed 1000 --skill 1.0 --obs "$OBS" --out "$RUN/data"
  $RL100 collect --task "metaworld/$TASK" --episodes 50 --seed 2000 --skill 0.3 --obs "$OBS" --out "$RUN/data"
  touch "$RUN/data/.done"
fi
[ -f "$RUN/il/policy.json" ] || $RL100 train-il --config il_state_small --dataset "$RUN/demos" --out "$RUN/il" \
  --steps "$IL_STEPS" --set train.obs_keys=[observation.env_state] --set policy.down_dims=[32,64,128] \
  --set train.batch_size=128 --set train.warmup_steps=200 --no-progress
for arm in helpful:1 harmful:-1; do
  name="${arm%%:*}"
  [ -f "$RUN/$name/result.json" ] || $RL100 offline-round --policy "$RUN/il/policy.json" --dataset "$RUN/data" \
    --out "$RUN/$name" --ppo-iters "$PPO_ITERS" --batch-size 128 --seed 0 --device cpu \
    --set "advantage_scale=${arm##*:}" --set keep_candidate=true
done
declare -A POLICY=([il]="$RUN/il/policy.json" [helpful]="$RUN/helpful/candidate.json"
                   [harmful]="$RUN/harmful/candidate.json")
for m in il helpful harmful; do
  [ -f "$RUN/$m.onnx" ] || $RL100 export "${POLICY[$m]}" --out "$RUN/$m.onnx" --control-rate 10 > /dev/null
  [ -f "$RUN/eval_$m.json" ] || $RL100 eval "$RUN/$m.onnx" --task "metaworld/$TASK" --episodes 100 \
    --seed 10000 --threads 1 --json "$RUN/eval_$m.json" > /dev/null
done
python - "$RUN" <<'EOF'
import json, sys
run = sys.argv[1]
print("| policy | AM-Q J (old -> new) | gate | success (100 episodes) | mean length |")
print("|---|---|---|---:|---:|")
for m in ("il", "helpful", "harmful"):
    ev = json.load(open(f"{run}/eval_{m}.json"))
    if m == "il":
        j, verdict = "-", "-"
    else:
        r = json.load(open(f"{run}/{m}/result.json"))
        j = f"{r['j_old']:.4f} -> {r['j_new']:.4f}"
        verdict = "accepted" if r["accepted"] else "rejected"
    print(f"| {m} | {j} | {verdict} | {ev['success_rate']:.2f} | {ev['mean_length']:.1f} |")
EOF
