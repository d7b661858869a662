"""The scripted operator: each failure sign triggers at the right step (and only then), it keeps control once it
has it, and in a simulated rollout every step after the takeover is flagged an intervention while the scripted
expert finishes the task."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rl100.data import Dataset
from rl100.keys import ACTION, FLAG_INTERVENTION, FLAG_ROLLOUT, FLAGS, OBS_ENV_STATE, OBS_STATE
from rl100.loop.operator import (
    DROPPED,
    EMPTY_GRASP,
    MISAIMED,
    MISSED_APPROACH,
    MW_DT,
    STALLED,
    OperatorConfig,
    ScriptedOperator,
    TaskView,
    bowling_view,
    juicing_view,
    metaworld_view,
    view_for,
)

TARGET = np.array([0.5, 0.2, 0.09])
R = 0.03  # object half-height


def view(obj, tcp=(0.45, 0.0, 0.3), width=0.08, speed=0.0) -> TaskView:
    return TaskView(tcp=np.asarray(tcp, float), gripper_width=width, obj=np.asarray(obj, float), obj_speed=speed,
                    obj_half_height=R, target=TARGET)


def first_takeover(op: ScriptedOperator, views) -> int | None:
    for t, v in enumerate(views):
        if op.update(v):
            return t
    return None


def test_dropped_off_target_triggers_but_placed_on_target_does_not():
    off = OperatorConfig(stall_steps=0, closed_steps=0)
    lift = [view((0.4, -0.2, R + 0.01 * i)) for i in range(6)]  # rises 5 cm: lifted
    fall = [view((0.4, -0.1, R + 0.002), speed=0.3), view((0.4, -0.1, R + 0.002), speed=0.01)]  # lands, then rests
    op = ScriptedOperator(off)
    assert first_takeover(op, lift + fall) == len(lift) + 1  # resting (slow) off-target: now
    assert op.reason == DROPPED and op.takeover_step == len(lift) + 1
    # the same fall onto the target's footprint, and a resting object that was never lifted: no takeover
    on_target = [view((TARGET[0] + 0.01, TARGET[1], R + 0.002), speed=0.0)]
    assert first_takeover(ScriptedOperator(off), lift + on_target) is None
    assert first_takeover(ScriptedOperator(off), [view((0.4, -0.2, R))] * 50) is None


def test_empty_grasp_needs_consecutive_closed_steps():
    cfg = OperatorConfig(stall_steps=0, closed_steps=5)
    closed, open_ = view((0.4, -0.2, R), width=0.002), view((0.4, -0.2, R), width=0.08)
    op = ScriptedOperator(cfg)
    assert first_takeover(op, [closed] * 4 + [open_] + [closed] * 4) is None  # interrupted: counts restart
    op = ScriptedOperator(cfg)
    assert first_takeover(op, [closed] * 5) == 4 and op.reason == EMPTY_GRASP
    holding = view((0.4, -0.2, R + 0.05), width=2 * R)  # closed on the object: its width
    assert first_takeover(ScriptedOperator(cfg), [holding] * 20) is None


def test_stall_and_progress():
    cfg = OperatorConfig(stall_steps=10, progress_eps=0.01, closed_steps=0)
    still = [view((0.4, -0.2, R))] * 30
    op = ScriptedOperator(cfg)
    assert first_takeover(op, still) == 10 and op.reason == STALLED
    # the TCP closes in by 2 cm per step for 20 steps, then stops: 10 steps later the operator takes over
    moving = [view((0.4, -0.2, R), tcp=(0.4, -0.2, 0.5 - 0.02 * i)) for i in range(20)]
    op = ScriptedOperator(cfg)
    assert first_takeover(op, moving + [moving[-1]] * 20) == 19 + 10
    # sub-threshold creeping is no progress
    creep = [view((0.4, -0.2, R), tcp=(0.4, -0.2, 0.5 - 0.001 * i)) for i in range(30)]
    assert first_takeover(ScriptedOperator(cfg), creep) == 10
    assert first_takeover(ScriptedOperator(OperatorConfig(stall_steps=0, closed_steps=0)), still) is None


def test_missed_approach_triggers_on_a_low_tool_beside_the_object_only():
    cfg = OperatorConfig(stall_steps=0, closed_steps=0, approach_height=0.06, approach_xy=0.04)
    obj = (0.4, -0.2, R)

    def descend(dx: float) -> list[TaskView]:  # the tool comes down from 15 cm above the object, dx to its side
        return [view(obj, tcp=(0.4 + dx, -0.2, R + 0.15 - 0.01 * i)) for i in range(16)]

    op = ScriptedOperator(cfg)
    assert first_takeover(op, descend(0.07)) == 10 and op.reason == MISSED_APPROACH  # first step below 6 cm
    assert first_takeover(ScriptedOperator(cfg), descend(0.02)) is None  # onto the object: a good approach
    high = [view(obj, tcp=(0.6, 0.1, R + 0.07))] * 20  # far away but above the approach height
    assert first_takeover(ScriptedOperator(cfg), high) is None
    off = OperatorConfig(stall_steps=0, closed_steps=0, approach_height=0.06)  # approach_xy 0: the default, off
    assert first_takeover(ScriptedOperator(off), descend(0.07)) is None
    with pytest.raises(ValueError, match="approach_xy"):
        OperatorConfig(approach_xy=-0.01)


def test_misaimed_triggers_on_a_low_tool_lined_up_off_the_target_direction():
    """Bowling-like: the object must leave towards TARGET; the tool comes down behind it along a line rotated by
    ``deg`` from the object-to-target direction."""
    cfg = OperatorConfig(stall_steps=0, closed_steps=0, approach_height=0.06, aim_deg=5.0, aim_dist=0.12)
    obj = np.array([0.45, -0.1, R])
    wanted = (TARGET[:2] - obj[:2]) / np.linalg.norm(TARGET[:2] - obj[:2])

    def descend_behind(deg: float, dist: float = 0.1) -> list[TaskView]:
        c, s_ = np.cos(np.radians(deg)), np.sin(np.radians(deg))
        line = np.array([c * wanted[0] - s_ * wanted[1], s_ * wanted[0] + c * wanted[1]])
        xy = obj[:2] - dist * line
        return [view(obj, tcp=(xy[0], xy[1], R + 0.15 - 0.01 * i)) for i in range(16)]

    op = ScriptedOperator(cfg)
    assert first_takeover(op, descend_behind(12.0)) == 10 and op.reason == MISAIMED  # first step below 6 cm
    assert first_takeover(ScriptedOperator(cfg), descend_behind(-12.0)) == 10
    assert first_takeover(ScriptedOperator(cfg), descend_behind(3.0)) is None  # lined up: a good strike
    assert first_takeover(ScriptedOperator(cfg), descend_behind(12.0, dist=0.2)) is None  # not yet close
    rolling = [dataclasses.replace(v, obj_speed=0.5) for v in descend_behind(12.0)]  # already struck: too late
    assert first_takeover(ScriptedOperator(cfg), rolling) is None
    off = OperatorConfig(stall_steps=0, closed_steps=0, approach_height=0.06)  # aim_deg 0: the default, off
    assert first_takeover(ScriptedOperator(off), descend_behind(30.0)) is None
    with pytest.raises(ValueError, match="aim_deg"):
        OperatorConfig(aim_deg=-1.0)


def test_keeps_control_and_resets():
    op = ScriptedOperator(OperatorConfig(stall_steps=2, closed_steps=0))
    views = [view((0.4, -0.2, R))] * 3
    assert [op.update(v) for v in views] == [False, False, True]
    moving = [view((0.4, -0.2, R), tcp=(0.4, -0.2, 0.5 - 0.05 * i)) for i in range(5)]
    assert all(op.update(v) for v in moving)  # progress again: still in control
    assert op.takeover_step == 2
    op.reset()
    assert not op.active and op.reason is None and op.takeover_step is None and not op.update(views[0])


def test_config_and_view_validation():
    with pytest.raises(ValueError, match="stall_steps"):
        OperatorConfig(stall_steps=-1)
    with pytest.raises(ValueError, match="rest_height"):
        OperatorConfig(rest_height=0.05, lift_height=0.03)
    with pytest.raises(ValueError, match="obj"):
        TaskView(tcp=np.zeros(3), gripper_width=0.08, obj=np.array([0.0, np.nan, 0.0]), obj_speed=0.0,
                 obj_half_height=R, target=TARGET)


def test_juicing_view_reads_the_privileged_state(sim_ok):
    from rl100 import sim

    env = sim.make_env("juicing-place", seed=3)
    obs, _ = env.reset(seed=3)
    u = env.unwrapped
    v = juicing_view(obs)
    np.testing.assert_allclose(v.obj, u.data.qpos[u._orange_qadr : u._orange_qadr + 3], atol=1e-6)
    np.testing.assert_allclose(v.target, u.crown_pos(), atol=1e-6)
    np.testing.assert_allclose(v.tcp, obs[OBS_STATE][:3], atol=1e-6)
    assert v.obj_half_height == pytest.approx(u.orange_radius) and abs(v.height) < 0.002  # resting on the table
    assert v.gripper_width == pytest.approx(float(obs[OBS_STATE][7])) and v.gripper_width > 0.07
    assert OBS_ENV_STATE in obs
    env.close()


def test_bowling_view_reads_the_privileged_state(sim_ok):
    from rl100 import sim

    env = sim.make_env("bowling", seed=4)
    obs, _ = env.reset(seed=4)
    u = env.unwrapped
    assert view_for("bowling") is bowling_view
    v = bowling_view(obs)
    np.testing.assert_allclose(v.obj, u.data.qpos[u._ball_q : u._ball_q + 3], atol=1e-6)
    np.testing.assert_allclose(v.target, u.data.qpos[u._pin_q[0] : u._pin_q[0] + 3], atol=1e-6)
    assert v.obj_half_height == pytest.approx(u.ball_radius) and abs(v.height) < 0.002  # the ball rests on the table
    env.close()


class HoldStill:
    """A policy that never makes progress: it holds the first TCP pose it sees, gripper open."""

    def reset(self) -> None:
        self.action = None

    def act(self, obs):
        if self.action is None:
            self.action = np.array([*obs[OBS_STATE][:3], np.pi, 0.0, 0.0, 0.0], np.float32)
        return self.action


def test_operator_takes_over_a_stalled_rollout_and_flags_it(sim_ok, tmp_path):
    """A policy that holds still stalls; the operator takes over after ``stall_steps`` and the expert places the
    orange. Steps before the takeover are FLAG_ROLLOUT, every later step FLAG_INTERVENTION."""
    from rl100.loop.collectors import TAKEOVER_REASON, TAKEOVER_STEP, SimCollector, collection_metrics
    from rl100.sim import make_env

    specs = {OBS_STATE: (np.float32, (15,)), ACTION: (np.float32, (7,))}
    collector = SimCollector("juicing-place", specs, task_options={"max_steps": 110},
                             operator=OperatorConfig(stall_steps=5), fsync=False)
    env = make_env("juicing-place", obs=("state",), max_steps=110)
    root = collector.record(HoldStill(), env, tmp_path / "rollouts", n_episodes=2, seed=0, policy_name="hold")
    env.close()
    ds = Dataset(root)
    for i in range(len(ds)):
        info, flags = ds.episode_info(i), np.asarray(ds.episode(i)[FLAGS])
        k = info.meta[TAKEOVER_STEP]
        assert info.meta[TAKEOVER_REASON] == STALLED and k == 5
        assert np.all(flags[:k] == FLAG_ROLLOUT) and np.all(flags[k:] == FLAG_INTERVENTION)
        assert info.flag_counts == {"rollout": k, "intervention": info.length - k}
        assert info.success and info.terminal  # the expert finished the task
    m = collection_metrics(ds)
    assert m["intervention_episodes"] == 2 and m["takeover_reasons"] == {STALLED: 2}
    assert m["intervention_success_rate"] == 1.0 and m["policy_only_success_rate"] is None

    plain = SimCollector("juicing-place", specs, task_options={"max_steps": 12}, operator=None, fsync=False)
    env = make_env("juicing-place", obs=("state",), max_steps=12)
    ds = Dataset(plain.record(HoldStill(), env, tmp_path / "plain", n_episodes=1, seed=0))
    env.close()
    assert np.all(np.asarray(ds.episode(0)[FLAGS]) == FLAG_ROLLOUT) and TAKEOVER_STEP not in ds.episode_info(0).meta


@pytest.mark.parametrize("task", ["metaworld/push-v3", "metaworld/pick-place-v3"])
def test_metaworld_view_reads_the_object_and_goal(task):
    """The view against the simulator: object and goal from Meta-World's own state, 0 width when the pads close on
    nothing, the object at rest on the table, its speed from the previous frame's copy."""
    pytest.importorskip("metaworld")
    from rl100.sim import make_env

    env = make_env(task, obs=("state", "env_state"))
    obs, _ = env.reset(seed=3)
    u = env.unwrapped
    v = view_for(task)(obs)
    np.testing.assert_allclose(v.obj, u.mw._get_pos_objects()[:3], atol=1e-5)
    np.testing.assert_allclose(v.target, u.mw._target_pos, atol=1e-5)
    np.testing.assert_allclose(v.tcp, u.mw.tcp_center, atol=1e-5)
    assert abs(v.height) < 0.002 and v.obj_speed < 1e-6 and v.gripper_width > 0.05
    assert u.mw.dt == pytest.approx(MW_DT)
    for _ in range(15):  # close the gripper in the air
        obs, *_ = env.step(np.array([0.0, 0.0, 0.0, 1.0], np.float32))
    assert abs(metaworld_view(obs).gripper_width) < OperatorConfig().closed_width
    env.close()


@pytest.mark.parametrize("recover", [True, False])
def test_operator_takes_over_a_stalled_metaworld_rollout(recover, monkeypatch):
    """push-v3: a policy that lowers the hand and closes the gripper beside the puck stalls; the operator takes over
    after ``stall_steps`` and Meta-World's scripted policy (the expert it drives) pushes the puck to the goal - after
    the expert's recovery (open, lift): without it the half-closed gripper lands on the puck and never succeeds."""
    pytest.importorskip("metaworld")
    from rl100.sim import make_env, make_expert
    from rl100.sim.metaworld_env import MetaWorldExpert

    if not recover:
        monkeypatch.setattr(MetaWorldExpert, "RECOVER_OPEN", -1.0)
        monkeypatch.setattr(MetaWorldExpert, "RECOVER_Z", -1.0)
    env = make_env("metaworld/push-v3", obs=("state", "env_state"), max_steps=150)
    expert, op = make_expert("metaworld/push-v3", env), ScriptedOperator(OperatorConfig(stall_steps=10, closed_steps=0))
    obs, _ = env.reset(seed=5)
    took, success = None, False
    for t in range(150):
        if op.update(metaworld_view(obs)):
            if took is None:
                took = t
                expert.reset()
            action = expert.act(obs)
        else:
            action = np.array([0.0, 0.0, -1.0, 1.0], np.float32)  # down, close
        obs, _, terminated, truncated, info = env.step(action)
        success = bool(info["success"])
        if terminated or truncated:
            break
    env.close()
    assert took is not None and op.reason == STALLED and success == recover


def test_metaworld_expert_recovery_takes_no_step_at_an_episode_start():
    """At the start pose (gripper open, hand at its start height) the expert's first action is the scripted
    policy's own: demonstrations are the same as without the recovery."""
    pytest.importorskip("metaworld")
    from metaworld.policies import ENV_POLICY_MAP

    from rl100.sim import make_env, make_expert

    for task in ("metaworld/push-v3", "metaworld/pick-place-v3"):
        env = make_env(task, obs=("state", "env_state"))
        obs, _ = env.reset(seed=7)
        expert = make_expert(task, env)
        expert.reset()
        want = ENV_POLICY_MAP[env.unwrapped.task]().get_action(env.unwrapped.raw_observation())
        np.testing.assert_allclose(expert.act(obs), np.clip(want, -1, 1), atol=1e-6)
        env.close()
