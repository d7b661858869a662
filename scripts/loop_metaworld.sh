#!/usr/bin/env bash
# The RL-100 offline loop on a Meta-World v3 task from few demos, CPU-sized: N scripted-policy demos with
# Meta-World's own 39-d state -> small diffusion policy (U-Net 32-64-128, IL 2,000 steps at batch 128) ->
# rl100 loop-sim: round 0 distils a one-step student, exports and evaluates both; each later round collects
# episodes with the DDIM policy (the one offline PPO trains), IQL critics + PPO over the denoising chain + OPE
# gate, re-imitation on demos + successful rollouts (2,000 steps at lr 1e-4 from the round's policy, the
# normaliser fitted to the round's data: a few demos' min-max ranges put new object poses far outside [-1, 1]),
# distillation (4,000 steps from the teacher's weights: the refitted normaliser rules out a warm start from the
# previous student, and 1,000 steps left it 4-40 points behind its teacher), export, 100 evaluation episodes of
# each export on fixed seeds. The runs in BENCHMARKS.md before 2026-11-29 re-imitated 1,000 steps at lr 3e-5 with
# the IL policy's normaliser: append il.steps=1000 il.lr=3e-5 il.refit_normalizer=false distill.steps=1000 to
# reproduce them; the 2026-11-29 runs distilled 1,000 steps and drew re-imitation batches uniformly: append
# distill.steps=1000 il.intervention_share=0. Re-imitation now draws half of every batch from the operator's
# segments (il.intervention_share=0.5: +5 points at pick-place's plateau, BENCHMARKS.md).
# RL100_OPERATOR=1: a scripted operator watches collection and hands control to Meta-World's scripted policy
# at the first failure sign: the hand comes down to within 6 cm of the object's centre height more than 4 cm
# beside it (missed approach; 2 cm on pick-place-v3, whose script only descends within 2 cm: a block grasped
# 2-4 cm off centre slips out on the way, and the script's re-grasp of a dropped block often fails; the
# 2026-11-29 pp1 run used 4 cm: append operator.approach_xy=0.04), or the episode stalls (no progress of
# hand-to-object + object-to-goal distance for 25 steps; the empty-grasp sign is off: these grippers push with
# closed fingers); the expert first opens the gripper and lifts the hand, then runs its script; those steps are
# flagged interventions and imitated (HIL-SERL), with a BC term of weight 0.1 in offline PPO. RL100_OPERATOR=stall:
# the stall sign alone (the first operator runs). Default: no operator.
# RL100_STUDENT=PATH: a consistency student of the IL policy (round 0 then skips distillation).
#
#   scripts/loop_metaworld.sh TASK RUN_DIR [DEMOS] [ROUNDS] [DEVICE] [extra loop-sim --set KEY=VALUE ...]
#   e.g. scripts/loop_metaworld.sh push-v3 runs/loop_push10 10 3 cpu
#
# Stages whose output exists are skipped, and the loop resumes from its ledger, so an interrupted run
# continues. On a 2-core CPU one round takes 10-25 minutes.
set -euo pipefail
USAGE="usage: loop_metaworld.sh TASK RUN_DIR [DEMOS] [ROUNDS] [DEVICE] [KEY=VALUE ...]"
TASK="${1:?$USAGE}"
RUN="${2:?$USAGE}"
DEMOS="${3:-10}"
ROUNDS="${4:-3}"
DEVICE="${5:-auto}"
shift $(( $# < 5 ? $# : 5 ))
RL100="${RL100:-rl100}"
WORKERS="${RL100_WORKERS:-$(nproc)}"
mkdir -p "$RUN"
[ -f "$RUN/demos/dataset.json" ] || $RL100 collect --task "metaworld/$TASK" --episodes "$DEMOS" --seed 1000 \
  --skill 1.0 --obs state,env_state --out "$RUN/demos"
[ -f "$RUN/il/policy.json" ] || $RL100 train-il --config il_state_small --dataset "$RUN/demos" --out "$RUN/il" \
  --steps 2000 --set train.obs_keys=[observation.env_state] --set policy.down_dims=[32,64,128] \
  --set train.batch_size=128 --set train.warmup_steps=200 --set train.device="$DEVICE" --no-progress
extra=()
APPROACH_XY=0.04
if [ "$TASK" = pick-place-v3 ]; then APPROACH_XY=0.02; fi
case "${RL100_OPERATOR:-0}" in
  1) extra+=(--set offline.bc_weight=0.1 --set operator.stall_steps=25 --set operator.closed_steps=0
             --set operator.approach_height=0.06 --set operator.approach_xy="$APPROACH_XY") ;;
  stall) extra+=(--set offline.bc_weight=0.1 --set operator.stall_steps=25 --set operator.closed_steps=0) ;;
  0) extra+=(--no-operator) ;;
  *) echo "RL100_OPERATOR must be 0, 1 or stall, got ${RL100_OPERATOR}" >&2; exit 2 ;;
esac
if [ -n "${RL100_STUDENT:-}" ]; then extra+=(--student "$RL100_STUDENT"); fi  # a distilled student of the IL policy
for kv in "$@"; do extra+=(--set "$kv"); done
exec $RL100 loop-sim --policy "$RUN/il/policy.json" --dataset "$RUN/demos" --task "metaworld/$TASK" \
  --rounds "$ROUNDS" --episodes 50 --eval-episodes 100 --out "$RUN/loop" --device "$DEVICE" \
  --set workers="$WORKERS" --set collect_with=ddim \
  --set offline.critic_steps=2000 --set offline.ppo_iters=30 --set offline.batch_size=128 \
  --set il.steps=2000 --set il.lr=1e-4 --set il.batch_size=128 --set il.refit_normalizer=true --set il.intervention_share=0.5 \
  --set distill.steps=4000 --set distill.batch_size=128 --set distill.warmup_steps=100 \
  "${extra[@]}"
