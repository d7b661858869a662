#!/usr/bin/env bash
# The RL-100 loop on a simulated Panda task (rl100.sim: juicing-place, bowling, pouring) from a novice policy,
# CPU-sized: the policy reads the simulator's privileged state (proprioception + the objects' poses,
# observation.state + observation.env_state) instead of the deployed point cloud, so that imitation, the rounds and
# the evaluations fit a 2-core machine. Not a deployable policy: a real robot has no object pose.
#   DEMOS successful episodes of the scripted expert at skill SKILL (novice demos) -> small diffusion policy (U-Net
#   32-64-128, IL STEPS at batch 128) -> rl100 loop-sim: per round, collect 50 episodes with the DDIM policy while
#   the scripted operator takes over near failure (flagged interventions; on tasks with an operator view:
#   juicing-place, bowling; else no operator), IQL critics + offline PPO over the denoising chain + OPE gate, re-imitation
#   on demos + successful rollouts + intervention segments (2,000 steps at lr 1e-4, the normaliser refitted to the
#   round's data, half of every batch from the operator's segments), distillation (4,000 steps from the teacher's
#   weights), export, 100 evaluation episodes of each export on fixed seeds. online_iterations=N adds the online
#   phase.
#
#   scripts/loop_panda_state.sh TASK RUN_DIR [ROUNDS] [DEVICE] [extra loop-sim --set KEY=VALUE ...]
#   e.g. scripts/loop_panda_state.sh bowling runs/bowl 3 cpu online_iterations=30
#
# Env: RL100_WORKERS (collection / evaluation processes, default: the number of cores), IL_STEPS (default 2000),
# RL100_SKILL (demo expert skill, default 0.3), RL100_DEMOS (default 30), RL100_DEMO_SEED (default 2000).
# Stages whose output exists are skipped, and the loop resumes from its ledger, so an interrupted run continues.
# (Bowling runs started before the operator's misaimed sign, e.g. runs/bowl2 of BENCHMARKS, were run without the
# three operator.aim_deg / aim_dist / approach_height settings; their ledger refuses the new ones.)
set -euo pipefail
USAGE="usage: loop_panda_state.sh TASK RUN_DIR [ROUNDS] [DEVICE] [KEY=VALUE ...]"
TASK="${1:?$USAGE}"
RUN="${2:?$USAGE}"
ROUNDS="${3:-3}"
DEVICE="${4:-auto}"
shift $(( $# < 4 ? $# : 4 ))
RL100="${RL100:-rl100}"
WORKERS="${RL100_WORKERS:-$(nproc)}"
mkdir -p "$RUN"
[ -f "$RUN/demos/dataset.json" ] || $RL100 collect --task "$TASK" --episodes "${RL100_DEMOS:-30}" \
  --seed "${RL100_DEMO_SEED:-2000}" --skill "${RL100_SKILL:-0.3}" --obs state,env_state --only-success --out "$RUN/demos"
[ -f "$RUN/il/policy.json" ] || $RL100 train-il --config il_state_small --dataset "$RUN/demos" --out "$RUN/il" \
  --steps "${IL_STEPS:-2000}" --set "train.obs_keys=[observation.state,observation.env_state]" \
  --set policy.down_dims=[32,64,128] --set train.batch_size=128 --set train.warmup_steps=200 \
  --set train.device="$DEVICE" --no-progress
extra=()
case "$TASK" in  # the scripted operator, on the tasks it has a view of (rl100.loop.operator.TASK_VIEWS)
  juicing-place) ;;
  bowling)  # fingers closed by design (no empty-grasp sign); take over before a strike that would miss the pins
    extra+=(--set operator.closed_steps=0 --set operator.stall_steps=25 --set operator.aim_deg=6
            --set operator.aim_dist=0.2 --set operator.approach_height=0.12) ;;
  *) extra+=(--no-operator) ;;
esac
for kv in "$@"; do extra+=(--set "$kv"); done
exec $RL100 loop-sim --policy "$RUN/il/policy.json" --dataset "$RUN/demos" --task "$TASK" \
  --rounds "$ROUNDS" --episodes 50 --eval-episodes 100 --out "$RUN/loop" --device "$DEVICE" \
  --set workers="$WORKERS" --set collect_with=ddim --set offline.bc_weight=0.1 \
  --set offline.critic_steps=2000 --set offline.ppo_iters=30 --set offline.batch_size=128 \
  --set il.steps=2000 --set il.lr=1e-4 --set il.batch_size=128 --set il.refit_normalizer=true --set il.intervention_share=0.5 \
  --set distill.steps=4000 --set distill.batch_size=128 --set distill.warmup_steps=100 \
  "${extra[@]}"
