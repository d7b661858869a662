#!/usr/bin/env bash
# The main job on its embedded default: bring up the orange_juicer graph (simulated robot),
# check every node joins the ROS graph, run briefly, stop cleanly.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. scripts/env.sh
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
exec python -m rl100_bringup.up orange_juicer --duration "${RL100_DEMO_SECONDS:-5}" "$@"
