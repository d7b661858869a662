# Source me: activates the rl100 venv and the colcon workspace overlay.
#   . scripts/env.sh
# colcon's setup scripts read unset variables: relax `set -u` while sourcing them
case $- in *u*) _rl100_nounset=1; set +u;; *) _rl100_nounset=;; esac
_rl100_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
# shellcheck disable=SC1091
. "${RL100_VENV:-$_rl100_root/.venv}/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
if [ -f "$_rl100_root/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  . "$_rl100_root/install/setup.bash"
else
  echo "[env] no install/setup.bash yet: run scripts/setup.sh" >&2
fi
[ -n "$_rl100_nounset" ] && set -u
unset _rl100_root _rl100_nounset
