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
# scripts/loop_panda_state.sh with TASK juicing-place (its environment variables apply).
set -euo pipefail
exec "$(dirname "$0")/loop_panda_state.sh" juicing-place "$@"
