#!/usr/bin/env bash
# The RL-100 loop on juicing-place from a novice policy, CPU-sized: the policy reads the simulator's privileged state
# (proprioception + the orange's and juicer's poses, observation.state + observation.env_state) instead of the
# deployed point cloud, so that imitation, the rounds and the evaluations fit a 2-core machine. A stand-in for
# scripts/loop_juicing.sh (points, sized for a GPU), not a deployable policy: a real robot has no orange pose.
#   30 successful episodes of the scripted expert at skill 0.3 (the novice demos of loop_juicing.sh) -> small
#   diffusion policy (U-Net 32-64-128, IL STEPS at batch 128) -> rl100 loop-sim: per round, collect 50 episodes with
#   the DDIM policy while the scripted operator takes over near failure (flagged interventions), IQL critics +
#   offline PPO over the denoising chain + OPE gate, re-imitation on demos + successful rollouts + intervention
#   segments (2,000 steps at lr 1e-4, the normaliser refitted to the round's data, half of every batch from the
#   operator's segments), distillation (4,000 steps from the teacher's weights), export, 100 evaluation episodes of
#   each export on fixed seeds. The first run (2026-11-29) distilled 1,000 steps and drew batches uniformly: append
#   distill.steps=1000 il.intervention_share=0 to reproduce it.
#
#   scripts/loop_juicing_state.sh RUN_DIR [ROUNDS] [DEVICE] [extra loop-sim --set KEY=VALUE ...]
#
# Env: RL100_WORKERS (collection / evaluation processes, default: the number of cores), IL_STEPS (default 2000).
# Stages whose output exists are skipped, and the loop resumes from its ledger, so an interrupted run continues.
set -euo pipefail
RUN="${1:?usage: loop_juicing_state.sh RUN_DIR [ROUNDS] [DEVICE] [KEY=VALUE ...]}"
ROUNDS="${2:-3}"
DEVICE="${3:-auto}"
shift $(( $# < 3 ? $# : 3 ))
RL100="${RL100:-rl100}"
WORKERS="${RL100_WORKERS:-$(nproc)}"
mkdir -p "$RUN"
[ -f "$RUN/demos/dataset.json" ] || $RL100 collect --task juicing-place --episodes 30 --seed 2000 --skill 0.3 \
  --obs state,env_state --only-success --out "$RUN/demos"
[ -f "$RUN/il/policy.json" ] || $RL100 train-il --config il_state_small --dataset "$RUN/demos" --out "$RUN/il" \
  --steps "${IL_STEPS:-2000}" --set "train.obs_keys=[observation.state,observation.env_state]" \
  --set policy.down_dims=[32,64,128] --set train.batch_size=128 --set train.warmup_steps=200 \
  --set train.device="$DEVICE" --no-progress
extra=()
for kv in "$@"; do extra+=(--set "$kv"); done
exec $RL100 loop-sim --policy "$RUN/il/policy.json" --dataset "$RUN/demos" --task juicing-place \
  --rounds "$ROUNDS" --episodes 50 --eval-episodes 100 --out "$RUN/loop" --device "$DEVICE" \
  --set workers="$WORKERS" --set collect_with=ddim --set offline.bc_weight=0.1 \
  --set offline.critic_steps=2000 --set offline.ppo_iters=30 --set offline.batch_size=128 \
  --set il.steps=2000 --set il.lr=1e-4 --set il.batch_size=128 --set il.refit_normalizer=true --set il.intervention_share=0.5 \
  --set distill.steps=4000 --set distill.batch_size=128 --set distill.warmup_steps=100 \
  "${extra[@]}"
