"""The simulation must not drift: a shipped policy was trained on it.

``sim_trajectories.json`` holds short open-loop rollouts (fixed seed, the full-skill expert's
actions recorded once) of juicing-place and bowling, made with the code of 2026-11 (MuJoCo 3.3.0)
before any speed work: observations every few control steps, rewards, success flags and the final
qpos/qvel. Replaying the same actions must give the same numbers. Observations are float32 and
compared to 1e-6, physics state to 1e-9: far below what a change of the controller, the filter or
the contact model moves (millimetres), above last-ulp noise of another CPU's libm (a 1e-13
perturbation of the start posture leaves every observation bit-identical after 20 steps).

Regenerate (only for an intended behaviour change, which invalidates trained policies):
``python src/rl100/tests/sim/test_sim_determinism.py --regenerate``.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import pytest

FIXTURE = pathlib.Path(__file__).with_name("sim_trajectories.json")
TASKS = {"juicing-place": 60, "bowling": 30}  # control steps (bowling succeeds and stops at 24)
SEED = 3
EVERY = 4  # store the observations of every 4th step (and the last)


def _rollout(task: str, steps: int, actions=None) -> dict:
    from rl100.sim import make_env, make_expert

    env = make_env(task, seed=SEED)
    expert = make_expert(task, env, skill=1.0, seed=SEED) if actions is None else None
    obs, _ = env.reset(seed=SEED)
    if expert is not None:
        expert.reset()
    u = env.unwrapped
    out: dict = {"actions": [], "obs_steps": [], "obs": [], "reward": [], "success": []}
    for t in range(steps if actions is None else len(actions)):
        a = np.asarray(expert.act(obs) if actions is None else actions[t], dtype=np.float64)
        out["actions"].append(a.tolist())
        obs, reward, terminated, truncated, info = env.step(a)
        out["reward"].append(float(reward))
        out["success"].append(bool(info["success"]))
        last = terminated or truncated or t == steps - 1
        if t % EVERY == 0 or last:
            out["obs_steps"].append(t)
            out["obs"].append(np.concatenate([obs["observation.state"], obs["observation.env_state"]]).tolist())
        if terminated or truncated:
            break
    out["qpos"], out["qvel"] = u.data.qpos.tolist(), u.data.qvel.tolist()
    env.close()
    return out


@pytest.mark.parametrize("task", sorted(TASKS))
def test_replayed_rollout_matches_the_recorded_one(task):
    pytest.importorskip("mujoco")
    pytest.importorskip("gymnasium_robotics")
    ref = json.loads(FIXTURE.read_text())[task]
    got = _rollout(task, len(ref["actions"]), actions=ref["actions"])
    assert got["success"] == ref["success"] and got["reward"] == ref["reward"]
    assert got["obs_steps"] == ref["obs_steps"]
    for t, a, b in zip(ref["obs_steps"], got["obs"], ref["obs"], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=f"{task}: observation after step {t}")
    np.testing.assert_allclose(got["qpos"], ref["qpos"], rtol=0, atol=1e-9, err_msg=f"{task}: final qpos")
    np.testing.assert_allclose(got["qvel"], ref["qvel"], rtol=0, atol=1e-9, err_msg=f"{task}: final qvel")


if __name__ == "__main__" and "--regenerate" in sys.argv:
    import mujoco

    data = {task: _rollout(task, steps) for task, steps in TASKS.items()}
    data["_made_with"] = {"mujoco": mujoco.__version__, "numpy": np.__version__}
    FIXTURE.write_text(json.dumps(data, indent=None) + "\n")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")
