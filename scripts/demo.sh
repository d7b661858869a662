#!/usr/bin/env bash
# The main job on its default: bring up the orange_juicer graph (simulated robot, the shipped
# policy models/juicing_place_cm.onnx, safety node, recorder; one process each, DDS between
# them), run evaluation episodes through it and print the success rate, mean cycle time,
# achieved control rate and policy latency.
#   scripts/demo.sh                       10 episodes (RL100_DEMO_EPISODES overrides)
#   scripts/demo.sh 50                    50 episodes
#   scripts/demo.sh 5 model:=runs/juicing/policy.onnx --time-limit 10    other up arguments
# Bags and results go to runs/demo/<time>/ (episodes/, results.json) unless record_dir:= is given.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. scripts/env.sh
if [[ "${ROS_DISTRO:-}" == humble ]]; then  # discovery on this machine only: Humble's variable
  export ROS_LOCALHOST_ONLY="${ROS_LOCALHOST_ONLY:-1}"
else
  export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # one math thread per node process
episodes="${RL100_DEMO_EPISODES:-10}"
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
  episodes=$1
  shift
fi
out="runs/demo/$(date +%Y%m%dT%H%M%S)"
echo "[demo] $episodes episodes; bags and results in $out/"
# launch arguments given later (e.g. record_dir:=...) override the ones here
exec python -m rl100_bringup.up orange_juicer "record_dir:=$ROOT/$out/episodes" \
  --episodes "$episodes" --results-json "$out/results.json" "$@"
