#!/usr/bin/env bash
# The RL-100 loop on juicing-place from a novice policy (issue results: IL from few, poor demos
# stays below 70 %; the loop should lift it). In-process simulation, the deployed observation
# (512-point cloud + proprioception):
#   30 successful episodes of the scripted expert at skill 0.3 ("novice": it succeeds about half
#   the time and takes detours) -> DP3-style diffusion policy, 7,200 steps -> consistency student,
#   1,300 steps -> rl100 loop-sim: per round, collect with the one-step policy while a scripted
#   operator takes over near failure (flagged interventions), IQL critics + offline PPO over the
#   denoising chain + OPE gate, re-imitation on demos + successful rollouts + intervention
#   segments, warm-started distillation, export, evaluation of CM and DDIM on fixed seeds.
#
#   scripts/loop_juicing.sh RUN_DIR [DEVICE] [ROUNDS] [extra loop-sim --set KEY=VALUE ...]
#
# Stages whose output exists are skipped, and the loop itself resumes from its ledger, so an
# interrupted run continues (the loop replaces this shell: a signal sent to the script stops it
# cleanly, e.g. `timeout -s INT`). Sized for one GPU plus a multi-core host (RL100_WORKERS processes
# collect and evaluate; default: the number of cores); on a 2-core CPU the IL stage takes a day.
set -euo pipefail
RUN="${1:?usage: loop_juicing.sh RUN_DIR [DEVICE] [ROUNDS] [KEY=VALUE ...]}"
DEVICE="${2:-auto}"
ROUNDS="${3:-3}"
shift $(( $# < 3 ? $# : 3 ))
RL100="${RL100:-rl100}"
WORKERS="${RL100_WORKERS:-$(nproc)}"
mkdir -p "$RUN"
if [ ! -f "$RUN/demos/dataset.json" ]; then
  $RL100 collect --task juicing-place --episodes 30 --seed 2000 --skill 0.3 --obs state,points --n-points 512 \
    --only-success --out "$RUN/demos"
fi
if [ ! -f "$RUN/il/policy.json" ]; then
  $RL100 train-il --config il_points_small --dataset "$RUN/demos" --out "$RUN/il" --steps 7200 \
    --set train.device="$DEVICE" --set train.warmup_steps=500 --no-progress
fi
if [ ! -f "$RUN/cm/policy.json" ]; then
  $RL100 distill --config distill_small --teacher "$RUN/il/policy.json" --dataset "$RUN/demos" --out "$RUN/cm" \
    --steps 1300 --set train.device="$DEVICE" --set train.warmup_steps=200 --no-progress
fi
extra=()
for kv in "$@"; do extra+=(--set "$kv"); done
exec $RL100 loop-sim --policy "$RUN/il/policy.json" --student "$RUN/cm/policy.json" --dataset "$RUN/demos" \
  --task juicing-place --rounds "$ROUNDS" --episodes 40 --eval-episodes 100 --out "$RUN/loop" --device "$DEVICE" \
  --set workers="$WORKERS" \
  --set offline.critic_steps=2000 --set offline.ppo_iters=30 --set offline.eval_states=512 \
  --set offline.bc_weight=0.1 \
  --set il.steps=1500 --set il.lr=3e-5 --set il.batch_size=256 \
  --set distill.steps=800 --set distill.warmup_steps=50 \
  "${extra[@]}"
