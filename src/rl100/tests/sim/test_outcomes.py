"""Episode outcomes (rl100.sim.outcomes): each failure mode produced on purpose by a scripted agent on juicing-place,
and the refusal of a task without a place target."""

from __future__ import annotations

import numpy as np
import pytest

SEED = 7


def rollout(env, act, tracker, steps: int = 200) -> bool:
    obs, _ = env.reset(seed=SEED)
    tracker.reset()
    success = False
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(act(obs))
        tracker.step()
        success = success or bool(info.get("success", False))
        if terminated or truncated:
            break
    return success


def expert_agent(env, tweak=None):
    """The careful expert; ``tweak(expert, action)`` may change its action."""
    from rl100.sim.experts import JuicingExpert

    expert = JuicingExpert(env, skill=1.0, seed=0)
    expert.reset()

    def act(obs):
        a = expert.act(obs)
        return tweak(expert, a) if tweak else a

    return expert, act


def test_modes_of_deliberate_failures(juicing_env):
    from rl100.sim.outcomes import MODES, OutcomeTracker, summarise, supported

    env = juicing_env
    assert supported(env)
    tracker = OutcomeTracker(env)
    records = []

    _, act = expert_agent(env)  # the expert: placed at the cone
    ok = rollout(env, act, tracker)
    assert ok and tracker.outcome(ok) == "success" and tracker.releases == ["target"]
    records.append(tracker.record(ok))

    def drop_on_the_way(expert, a):  # open the hand while carrying, far from the cone
        crown = env.unwrapped.crown_pos()
        if expert.phase == 4 and np.linalg.norm(expert.cmd[:2] - crown[:2]) > 0.15:
            a = a.copy()
            a[6] = 0.0
        return a

    _, act = expert_agent(env, drop_on_the_way)
    ok = rollout(env, act, tracker)
    assert not ok and tracker.outcome(ok) == "dropped" and tracker.releases[0] == "away"
    records.append(tracker.record(ok))

    expert, act = expert_agent(env)
    expert.place_off = np.array([0.035, 0.0])  # let go 3.5 cm off the cone axis: beside it, not on it
    ok = rollout(env, act, tracker)
    assert not ok and tracker.outcome(ok) == "missed_target", tracker.record(ok)
    assert 0.02 < tracker.release_error_m <= tracker.near
    records.append(tracker.record(ok))

    _, act = expert_agent(env)
    ok = rollout(env, act, tracker, steps=45)  # cut while carrying
    assert not ok and tracker.outcome(ok) == "holding" and tracker.releases == []
    records.append(tracker.record(ok))

    home = np.array([0.45, 0.0, 0.32, np.pi, 0.0, 0.0, 0.0], dtype=np.float32)
    ok = rollout(env, lambda obs: home, tracker, steps=20)
    assert not ok and tracker.outcome(ok) == "never_lifted" and tracker.record(ok)["release_error_m"] is None
    records.append(tracker.record(ok))

    summary = summarise(records)
    assert summary["modes"] == dict.fromkeys(MODES, 1)
    assert summary["failed_after_target_release"] == 1  # the missed placement
    assert summary["missed_release_error_m"] == pytest.approx(records[2]["release_error_m"])


def test_task_without_a_place_target_is_refused():
    pytest.importorskip("mujoco")
    from rl100.sim import make_env
    from rl100.sim.outcomes import OutcomeTracker, supported

    env = make_env("bowling")
    try:
        assert not supported(env)
        with pytest.raises(ValueError, match="place target"):
            OutcomeTracker(env)
    finally:
        env.close()
