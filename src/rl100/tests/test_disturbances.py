"""Robustness families (rl100.sim.disturbances): each changes what it should, seeds reproduce, nominal stays nominal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

pytest.importorskip("mujoco")
pytest.importorskip("gymnasium_robotics")

from rl100 import cli  # noqa: E402
from rl100.keys import OBS_DEPTH, OBS_ENV_STATE, OBS_POINTS, OBS_RGB, OBS_STATE  # noqa: E402
from rl100.sim import disturbances as D  # noqa: E402
from rl100.sim import make_env, make_expert  # noqa: E402
from rl100.sim.disturbances_obs import ObservationFilter  # noqa: E402

ALL = ["appearance", "camera_pose", "frame_drop", "friction", "latency", "move_object", "object_shape", "object_size",
       "push_arm", "push_object", "sensor_noise", "table_height"]


@pytest.fixture(scope="module")
def env():
    e = make_env("juicing-place")
    yield e
    e.close()


@pytest.fixture(scope="module")
def cam_env():
    e = make_env("juicing-place", obs=("state", "rgb", "depth", "points"), camera_size=(24, 32), n_points=64)
    yield e
    e.close()


def hold_actions(env, n: int) -> list[np.ndarray]:
    """A fixed open-loop action sequence: move the TCP 10 cm along +x at the start pose, gripper open."""
    env.reset(seed=0)
    start = env.arm.state()[:3].astype(np.float64)
    return [np.array([*(start + [0.1 * min(t, 5) / 5, 0.0, 0.0]), np.pi, 0.0, 0.0, 0.0]) for t in range(n)]


def rollout(env, spec, seed: int, actions) -> tuple[list[dict], list[np.ndarray]]:
    """(observations from reset on, qpos after reset and after each step) under ``spec``."""
    D.attach(env, spec)
    obs, _ = env.reset(seed=seed)
    observations, qpos = [obs], [env.data.qpos.copy()]
    for a in actions:
        obs, *_ = env.step(a)
        observations.append(obs)
        qpos.append(env.data.qpos.copy())
    D.attach(env, None)
    return observations, qpos


# -- registry, configs -------------------------------------------------------------------------------
def test_registry_and_clear_errors(env):
    assert D.family_names() == ALL
    with pytest.raises(ValueError, match="unknown robustness family 'shake'.*appearance.*table_height"):
        D.make_family("shake")
    with pytest.raises(ValueError, match="unknown robustness family"):
        D.parse_families("latency,shake:mild")
    with pytest.raises(ValueError, match="severity must be one of"):
        D.make_family("latency", "extreme")
    with pytest.raises(ValueError, match="valid parameters.*steps"):
        D.make_family("latency", delay=2)
    with pytest.raises(ValueError, match=r"latency.steps"):
        D.make_family("latency", steps=-1)
    with pytest.raises(ValueError, match=r"friction.scale"):
        D.make_family("friction", scale=(2.0, 1.0))
    with pytest.raises(ValueError, match="seed"):
        D.make_family("push_arm", seed=-1)
    with pytest.raises(ValueError, match="once per environment"):
        D.attach(env, "latency,latency:mild")
    assert env.disturbances is None


def test_configs_are_data_and_round_trip():
    for name in ALL:
        for sev in D.SEVERITIES:
            fam = D.make_family(name, sev, seed=3)
            data = json.loads(json.dumps(fam.to_dict()))
            assert data["family"] == name and data["severity"] == sev and data["seed"] == 3
            assert D.family_from_dict(data) == fam
            assert all(v is not None for v in data.values()), f"{name}:{sev} left a parameter unset"
    fams = D.parse_families("latency:severe, push_arm")
    assert [f.label() for f in fams] == ["latency:severe", "push_arm:moderate"]
    assert fams[0].steps == 4
    assert D.parse_families(D.to_json(fams)) == fams  # what the sim robot's parameter takes
    assert D.parse_families('{"family": "latency", "steps": 3}')[0].steps == 3
    assert D.parse_families("none") == [] and D.parse_families(None) == [] and D.parse_families("") == []
    assert D.make_family("push_arm", "mild", force=5.0).force == 5.0  # parameters override the preset


def test_family_that_does_not_apply_names_the_reason():
    bowling = make_env("bowling")
    try:
        with pytest.raises(ValueError, match="object_size: BowlingEnv has no set_object_shape"):
            D.attach(bowling, "object_size")
        assert bowling.disturbances is None
        assert D.applicability(bowling)["push_object"] is None  # the ball is bowling's manipuland
    finally:
        bowling.close()


# -- nominal and reproducibility ---------------------------------------------------------------------
def test_nominal_unchanged_without_a_family(env):
    actions = hold_actions(env, 12)
    fresh = make_env("juicing-place")
    try:
        ref_obs, ref_q = rollout(fresh, None, 5, actions)
    finally:
        fresh.close()
    D.attach(env, "push_arm:severe,table_height,object_shape")
    env.reset(seed=5)
    D.attach(env, None)  # detached: the model is the nominal one again
    assert env.disturbances is None
    obs, q = rollout(env, None, 5, actions)
    np.testing.assert_array_equal(np.array(q), np.array(ref_q))
    for a, b in zip(obs, ref_obs, strict=True):
        np.testing.assert_array_equal(a[OBS_STATE], b[OBS_STATE])
    # a family that only filters observations leaves the physics (and the task's own draws) nominal
    _, q_lat = rollout(env, "latency,sensor_noise", 5, actions)
    np.testing.assert_array_equal(np.array(q_lat), np.array(ref_q))


def test_same_seed_same_episode(env):
    spec = "push_arm,push_object,friction,table_height,object_shape,sensor_noise,frame_drop,latency:mild"
    actions = hold_actions(env, 25)
    obs1, q1 = rollout(env, spec, 7, actions)
    D.attach(env, spec)
    env.reset(seed=7)
    events = list(env.disturbances.events)
    obs2, q2 = rollout(env, spec, 7, actions)
    np.testing.assert_array_equal(np.array(q1), np.array(q2))
    for a, b in zip(obs1, obs2, strict=True):
        np.testing.assert_array_equal(a[OBS_STATE], b[OBS_STATE])
    D.attach(env, spec)
    env.reset(seed=8)
    assert env.disturbances.events != events  # another seed, other draws
    D.attach(env, spec, seed=1)
    env.reset(seed=7)
    assert env.disturbances.events != events  # another family seed, other draws
    D.attach(env, None)


# -- disturbances ------------------------------------------------------------------------------------
def test_push_arm_changes_the_arm_velocity_at_the_scheduled_step(env):
    actions = hold_actions(env, 10)
    _, q_nom = rollout(env, None, 1, actions)
    spec = {"family": "push_arm", "force": 40.0, "duration": 1, "window": [6, 6]}
    _, q_push = rollout(env, spec, 1, actions)
    arm = env.arm.qadr
    for t in range(7):  # qpos after reset and after steps 0..5: untouched
        np.testing.assert_array_equal(q_push[t], q_nom[t])
    assert np.abs(q_push[7][arm] - q_nom[7][arm]).max() > 5e-3  # step 6 was pushed


def test_push_object_changes_the_object_velocity_at_the_scheduled_step(env):
    actions = hold_actions(env, 8)
    obs_nom, _ = rollout(env, None, 2, actions)
    spec = {"family": "push_object", "severity": "moderate", "window": [3, 3]}
    D.attach(env, spec)
    env.reset(seed=2)
    direction = env.disturbances.families[0].direction
    D.attach(env, None)
    obs_push, _ = rollout(env, spec, 2, actions)
    vel = [o[OBS_ENV_STATE][7:10] for o in obs_push]
    for t in range(4):
        np.testing.assert_array_equal(obs_push[t][OBS_ENV_STATE], obs_nom[t][OBS_ENV_STATE])
    assert np.dot(vel[4], direction) > 0.05, "after step 3 the orange rolls along the push (> 5 cm/s)"
    assert np.linalg.norm(obs_nom[4][OBS_ENV_STATE][7:10]) < 1e-3


def test_paused_pushes_neither_act_nor_count_steps(env):
    """Paused for the first 4 steps (a robot on hold), a push at step 3 comes at the 8th step."""
    actions = hold_actions(env, 10)
    _, q_nom = rollout(env, None, 1, actions)
    D.attach(env, {"family": "push_arm", "force": 40.0, "duration": 1, "window": [3, 3]})
    env.reset(seed=1)
    qpos = [env.data.qpos.copy()]
    for i, a in enumerate(actions):
        env.disturbances.paused = i < 4
        env.step(a)
        qpos.append(env.data.qpos.copy())
    D.attach(env, None)
    arm = env.arm.qadr
    for t in range(8):  # paused steps 0-3, then unpaused steps 0-2: untouched
        np.testing.assert_array_equal(qpos[t], q_nom[t])
    assert np.abs(qpos[8][arm] - q_nom[8][arm]).max() > 5e-3  # the 8th step was pushed


def test_move_object_jumps_when_the_gripper_first_closes_near_it(env):
    D.attach(env, {"family": "move_object", "distance": 0.03})
    expert = make_expert("juicing-place", env, skill=1.0, seed=0)
    obs, _ = env.reset(seed=0)
    expert.reset()
    first_close, positions = None, [obs[OBS_ENV_STATE][:3]]
    for t in range(40):
        action = expert.act(obs)
        if first_close is None and action[6] >= 0.5:
            first_close = t
        obs, *_ = env.step(action)
        positions.append(obs[OBS_ENV_STATE][:3])
    [event] = env.disturbances.events
    assert event["step"] == first_close and event["family"] == "move_object"
    jumps = np.linalg.norm(np.diff(np.array(positions)[:, :2], axis=0), axis=1)
    assert jumps[first_close] == pytest.approx(0.03, abs=0.005)
    assert jumps[:first_close].max() < 0.002
    D.attach(env, None)


# -- conditions --------------------------------------------------------------------------------------
def test_conditions_change_the_model_and_detach_restores_it(env):
    m = env.model
    env.reset(seed=4)
    table, orange = m.geom("table").id, env._orange_geom
    nominal = {k: getattr(m, k).copy() for k in ("geom_friction", "geom_pos", "cam_pos", "cam_quat", "mat_rgba",
                                                  "light_diffuse", "geom_type")}
    nominal_orange = env.data.qpos[env._orange_qadr : env._orange_qadr + 3].copy()
    nominal_radius, juicer_z = env.orange_radius, m.body_pos[env._juicer_body, 2]

    D.attach(env, "friction")
    env.reset(seed=4)
    k = env.disturbances.families[0].value
    assert m.geom_friction[table, 0] == pytest.approx(nominal["geom_friction"][table, 0] * k)
    assert m.geom_friction[orange, 0] == pytest.approx(nominal["geom_friction"][orange, 0] * k)

    D.attach(env, "table_height:severe")
    obs, _ = env.reset(seed=4)
    dz = env.disturbances.families[0].value
    assert abs(dz) > 1e-4
    assert m.geom_pos[table, 2] == pytest.approx(nominal["geom_pos"][table, 2] + dz)
    assert m.body_pos[env._juicer_body, 2] == pytest.approx(juicer_z + dz)
    assert obs[OBS_ENV_STATE][2] == pytest.approx(nominal_orange[2] + dz, abs=2e-3)  # resting on the new top

    D.attach(env, {"family": "object_size", "scale": [1.1, 1.1]})
    obs, _ = env.reset(seed=4)
    assert m.geom_size[orange, 0] == pytest.approx(1.1 * nominal_radius)
    assert obs[OBS_ENV_STATE][10] == pytest.approx(1.1 * nominal_radius)  # the task reports it
    assert obs[OBS_ENV_STATE][2] == pytest.approx(1.1 * nominal_radius, abs=2e-3)

    D.attach(env, "object_shape:severe")
    obs, _ = env.reset(seed=4)
    axes = m.geom_size[orange]
    assert m.geom_type[orange] == 4  # mjGEOM_ELLIPSOID
    assert np.ptp(axes) > 0.002 and obs[OBS_ENV_STATE][10] == pytest.approx(axes[2])
    assert obs[OBS_ENV_STATE][2] == pytest.approx(axes[2], abs=2e-3)

    D.attach(env, "appearance")
    env.reset(seed=4)
    assert not np.allclose(m.mat_rgba, nominal["mat_rgba"])
    assert not np.allclose(m.light_diffuse, nominal["light_diffuse"])

    D.attach(env, None)
    env.reset(seed=4)
    for key, value in nominal.items():
        np.testing.assert_array_equal(getattr(m, key), value, err_msg=key)
    assert env.orange_radius == nominal_radius


def test_camera_pose_moves_the_camera_and_keeps_or_follows_the_calibration(cam_env):
    env = cam_env
    obs_nom, _ = env.reset(seed=1)
    info_nom = env.camera_info()
    D.attach(env, "camera_pose:severe")
    obs, _ = env.reset(seed=1)
    cid = env.model.camera("scene").id
    moved = env.data.cam_xpos[cid].copy()
    assert np.linalg.norm(moved - info_nom.base_T_cam[:3, 3]) > 1e-3
    np.testing.assert_allclose(env.camera_info().base_T_cam, info_nom.base_T_cam)  # calibration: nominal
    assert not np.array_equal(obs[OBS_DEPTH], obs_nom[OBS_DEPTH])  # the view moved
    D.attach(env, {"family": "camera_pose", "severity": "severe", "calibrated": True})
    env.reset(seed=1)
    np.testing.assert_allclose(env.camera_info().base_T_cam[:3, 3], moved)  # calibration follows
    D.attach(env, "appearance:severe")
    obs, _ = env.reset(seed=1)
    assert np.abs(obs[OBS_RGB].astype(int) - obs_nom[OBS_RGB]).mean() > 2.0  # colours and lights changed
    D.attach(env, None)


# -- observations ------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 3])
def test_latency_delays_observations_by_exactly_k_steps(cam_env, k):
    env = cam_env
    actions = hold_actions(env, 8)
    nom, q_nom = rollout(env, None, 3, actions)
    lat, q_lat = rollout(env, {"family": "latency", "steps": k}, 3, actions)
    np.testing.assert_array_equal(np.array(q_lat), np.array(q_nom))
    for t in range(len(nom)):
        for key in (OBS_STATE, OBS_RGB, OBS_DEPTH):
            np.testing.assert_array_equal(lat[t][key], nom[max(t - k, 0)][key], err_msg=f"{key} at {t}")
        np.testing.assert_array_equal(lat[t][OBS_ENV_STATE], nom[t][OBS_ENV_STATE])  # privileged: never delayed


def test_dropped_frames_repeat_the_previous_frame(cam_env):
    env = cam_env
    actions = hold_actions(env, 12)
    nom, _ = rollout(env, None, 3, actions)
    drop, _ = rollout(env, {"family": "frame_drop", "prob": 0.5}, 3, actions)
    repeated = 0
    for t in range(1, len(nom)):
        np.testing.assert_array_equal(drop[t][OBS_STATE], nom[t][OBS_STATE])  # state keeps flowing
        if np.array_equal(drop[t][OBS_DEPTH], nom[t][OBS_DEPTH]):
            continue  # delivered
        repeated += 1
        for key in (OBS_RGB, OBS_DEPTH, OBS_POINTS):  # the whole frame repeats, its cloud included
            np.testing.assert_array_equal(drop[t][key], drop[t - 1][key])
    assert 2 <= repeated <= 10
    all_dropped, _ = rollout(env, {"family": "frame_drop", "prob": 1.0}, 3, actions[:3])
    assert all(np.array_equal(o[OBS_DEPTH], all_dropped[0][OBS_DEPTH]) for o in all_dropped)


def test_sensor_noise_filter_statistics():
    rng_input = np.random.default_rng(0)
    state = np.concatenate([[0.4, 0.0, 0.3], [1.0, 0.0, 0.0, 0.0], [0.05], rng_input.uniform(-1, 1, 7)])
    obs = {OBS_STATE: state.astype(np.float32), OBS_DEPTH: np.full((64, 64), 1.0, np.float32),
           OBS_RGB: np.full((8, 8, 3), 100, np.uint8), OBS_ENV_STATE: np.zeros(14, np.float32)}
    obs[OBS_DEPTH][0, :] = 0.0  # no return stays no return
    before = {k: v.copy() for k, v in obs.items()}
    flt = ObservationFilter([D.make_family("sensor_noise", pos_std=0.01, joint_std=0.02, depth_std=0.01,
                                           depth_holes=0.1, rgb_std=5.0, rot_std=0.01)])
    flt.begin_episode([np.random.default_rng(1)])
    samples = [flt(obs) for _ in range(200)]
    for k, v in before.items():
        np.testing.assert_array_equal(obs[k], v)  # inputs are never edited in place
    s = np.array([o[OBS_STATE] for o in samples], dtype=np.float64)
    assert np.std(s[:, 0]) == pytest.approx(0.01, rel=0.2) and np.std(s[:, 8]) == pytest.approx(0.02, rel=0.2)
    np.testing.assert_allclose(np.linalg.norm(s[:, 3:7], axis=1), 1.0, atol=1e-5)
    assert np.all(s[:, 3] > 0.99)  # small rotations, sign kept
    depth = samples[0][OBS_DEPTH]
    assert np.all(depth[0] == 0.0)
    valid = depth[1:]
    assert np.mean(valid == 0.0) == pytest.approx(0.1, abs=0.03)
    assert np.std(valid[valid > 0]) == pytest.approx(0.01, rel=0.2)  # 1 cm at 1 m
    np.testing.assert_array_equal(samples[0][OBS_ENV_STATE], obs[OBS_ENV_STATE])


# -- the scripted expert under mild conditions, and the runner ---------------------------------------
@pytest.mark.parametrize("family", ["friction", "table_height", "object_size", "object_shape", "camera_pose",
                                    "appearance", "sensor_noise"])
def test_expert_succeeds_under_mild_conditions(env, family):
    D.attach(env, family, severity="mild")
    expert = make_expert("juicing-place", env, skill=1.0, seed=0)
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        expert.reset()
        for _ in range(env.config.max_steps):
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            if terminated or truncated:
                break
        assert info["success"], f"{family}:mild seed {seed}: {env.disturbances.events}"
    D.attach(env, None)


def test_robustness_command_writes_table_and_plot(tmp_path, capsys):
    out = tmp_path / "robust"
    argv = ["robustness", "expert", "--task", "juicing-place", "--families", "latency,push_object",
            "--severity", "mild", "--episodes", "1", "--out", str(out)]
    assert cli.main(argv) == 0
    table = (out / "robustness.md").read_text()
    assert "| nominal | - | 1.00 (1/1)" in table and "| latency | mild |" in table and "| push_object | mild |" in table
    result = json.loads((out / "results.json").read_text())
    assert [r["config"]["family"] for r in result["families"]] == ["latency", "push_object"]
    assert D.parse_families([r["config"] for r in result["families"]])[0].steps == 1
    assert result["nominal"]["outcomes"]["modes"]["success"] == 1  # juicing-place: failure modes per row
    assert "| failures |" in table and "failures: episodes per failure mode" in table
    assert (out / "robustness.png").read_bytes()[:4] == b"\x89PNG"
    assert "robustness.md" in capsys.readouterr().out
    assert cli.main([*argv[:4], "--families", "shove", "--out", str(out)]) == 2
    assert "unknown robustness family 'shove'" in capsys.readouterr().out


def test_all_families_skip_the_camera_ones_for_a_policy_without_a_camera(tmp_path, capsys):
    """A state-only agent: appearance, camera_pose and frame_drop would only repeat the nominal row; 'all' leaves
    them out and says why."""
    out = tmp_path / "all"
    argv = ["robustness", "expert", "--task", "juicing-place", "--families", "all", "--severity", "mild",
            "--episodes", "1", "--out", str(out)]
    assert cli.main(argv) == 0
    ran = {r["family"] for r in json.loads((out / "results.json").read_text())["families"]}
    assert ran == set(ALL) - {"appearance", "camera_pose", "frame_drop"}
    assert "camera_pose (the policy observes no camera)" in capsys.readouterr().out


def test_robustness_command_takes_parameter_overrides_for_an_ablation(tmp_path, capsys):
    from rl100.robustness import family_args

    assert family_args("latency(steps=3),sensor_noise(pos_std=0;rgb_std=1.5), push_arm") == [
        ("latency", {"steps": 3}), ("sensor_noise", {"pos_std": 0, "rgb_std": 1.5}), ("push_arm", {})]
    out = tmp_path / "ablate"
    argv = ["robustness", "expert", "--task", "juicing-place", "--families", "latency(steps=3),latency",
            "--severity", "mild", "--episodes", "1", "--out", str(out)]
    assert cli.main(argv) == 0
    result = json.loads((out / "results.json").read_text())
    assert [(r["family"], r["config"]["steps"]) for r in result["families"]] == [("latency(steps=3)", 3),
                                                                                  ("latency", 1)]
    assert "| latency(steps=3) | mild |" in (out / "robustness.md").read_text()
    for bad, message in (("latency(step=3)", "valid parameters"), ("latency(steps)", "not KEY=VALUE"),
                         ("latency(steps=3", "unbalanced")):
        assert cli.main([*argv[:4], "--families", bad, "--out", str(out)]) == 2
        assert message in capsys.readouterr().out
    assert cli.main([*argv, "--points-lo", "0.1,0.2"]) == 2
    assert "--points-lo wants X,Y,Z" in capsys.readouterr().out


def test_robustness_command_runs_a_points_policy_in_the_table_frame(tmp_path, capsys):
    model = Path(__file__).resolve().parents[3] / "models" / "juicing_place_cm.onnx"
    out = tmp_path / "tf"
    argv = ["robustness", str(model), "--task", "juicing-place", "--families", "table_height", "--episodes", "1",
            "--max-steps", "3", "--threads", "1", "--table-frame", "auto", "--out", str(out)]
    assert cli.main(argv) == 0
    result = json.loads((out / "results.json").read_text())
    assert "depth" in result["env_kwargs"]["obs"] and "points" not in result["env_kwargs"]["obs"]  # cloud made here
    assert "table frame auto" in (out / "robustness.md").read_text()
    for bad, message in ((["--table-frame", "high"], "wants off, auto or a shift"),):
        assert cli.main([*argv[:-4], *bad, "--out", str(out)]) == 2
        assert message in capsys.readouterr().out
    expert = ["robustness", "expert", "--task", "juicing-place", "--table-frame", "auto", "--out", str(out)]
    assert cli.main(expert) == 2
    assert "not the scripted expert" in capsys.readouterr().out


def test_robustness_command_checks_a_knocked_camera(tmp_path):
    model = Path(__file__).resolve().parents[3] / "models" / "juicing_place_cm.onnx"
    out = tmp_path / "cc"
    argv = ["robustness", str(model), "--task", "juicing-place", "--families", "camera_pose", "--episodes", "1",
            "--max-steps", "2", "--threads", "1", "--camera-check", "auto", "--out", str(out)]
    assert cli.main(argv) == 0
    result = json.loads((out / "results.json").read_text())
    assert "camera check" in (out / "robustness.md").read_text()
    checks = {r["family"]: r["camera_checks"] for r in result["families"]}
    checks["nominal"] = result["nominal"]["camera_checks"]
    assert len(checks["nominal"]) == 1 and len(checks["camera_pose"]) == 1  # one check per episode
    moved = [float(c.split()[2]) for c in (checks["nominal"][0], checks["camera_pose"][0])]
    assert moved[0] < 1.0 < moved[1]  # mm: the nominal camera is where it is believed; the knocked one is not


def test_disturbance_cycle_picks_the_family_by_episode_seed():
    """Episode seeded s runs under entry s mod n; a reset without a seed, or a spec that is no family, is refused."""
    env = D.cycle(make_env("juicing-place"), ["none", "table_height:severe"])
    try:
        env.reset(seed=4)
        assert env.current == "none" and env.unwrapped.disturbances is None
        env.reset(seed=5)
        assert env.current == "table_height:severe" and env.unwrapped.disturbances.events  # the table moved
        with pytest.raises(ValueError, match="needs a seed"):
            env.reset()
    finally:
        env.close()
    assert D.cycle("untouched", []) == "untouched"
    with pytest.raises(ValueError, match="shove"):
        D.DisturbanceCycle(None, ["shove"])


def test_wilson_bounds_and_the_plot_at_full_success(tmp_path):
    """100/100 once made Wilson's upper bound 1 - 1e-16 and the bar plot refused its negative error bar."""
    from rl100.robustness import bar_plot, wilson

    assert wilson(100, 100)[1] == 1.0 and wilson(0, 100)[0] == 0.0
    lo, hi = wilson(95, 100)
    assert 0.88 < lo < 0.95 < hi < 0.99
    row = {"success_rate": 1.0, "ci95": list(wilson(100, 100)), "family": "push_object", "severity": "moderate"}
    bar_plot({"nominal": row, "families": [row]}, tmp_path / "p.png", "all saved")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
