#!/usr/bin/env bash
# The project's test command: sets up (or checks) the environment, builds the workspace, and
# runs every test (learning core, ROS packages, workspace-level multi-process tests, lint).
# A failed build fails here with the build log (scripts/setup.sh prints it).
#   scripts/test.sh [pytest args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
# shellcheck disable=SC1091
. scripts/env.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}"
exec python -m pytest "$@"
