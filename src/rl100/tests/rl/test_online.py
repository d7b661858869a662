"""``rl100 online``: first-epoch PPO ratio, chunk-level GAE, value clipping, strict V warm start, a tiny end-to-end
run on a real simulated task (CLI, artefacts, parameters move, exact resume) and config validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rl100.keys import ACTION, OBS_STATE
from rl100.policy.checkpoint import CheckpointError, load_policy, save_policy, save_tensors
from rl100.policy.config import EncoderConfig, ObsSpec, PolicyConfig
from rl100.policy.diffusion import DiffusionPolicy
from rl100.rl.critics import CriticConfig, IQLCritics
from rl100.rl.denoising_mdp import sample_chain
from rl100.rl.gae import clipped_value_loss
from rl100.rl.online import Batch, make_learner
from rl100.rl.online_config import OnlineConfig, load_online_config
from rl100.rl.online_rollout import chunk_gae
from rl100.rl.online_value import CRITICS_FORMAT, ValueFunction, load_value_from_critics

STATE_DIM, ACTION_DIM = 15, 7  # the Panda tasks' observation.state and action
HOME = np.array([0.45, 0.0, 0.32, np.pi, 0.0, 0.0, 0.0])


def panda_policy(seed: int = 0) -> DiffusionPolicy:
    """A tiny diffusion policy for the Panda tasks; actions normalised over a small box around the home pose."""
    torch.manual_seed(seed)
    cfg = PolicyConfig(obs=[ObsSpec(OBS_STATE, (STATE_DIM,))], action_dim=ACTION_DIM, n_obs=2, horizon=4,
                       n_action_steps=2, down_dims=(16, 32), step_embed_dim=16, num_inference_steps=4,
                       encoder=EncoderConfig(lowdim_hidden=16, lowdim_out=8))
    policy = DiffusionPolicy(cfg)
    half = np.array([0.05, 0.05, 0.05, 0.1, 0.1, 0.1, 0.5])
    lo, hi = HOME - half, HOME + half
    lo[6], hi[6] = 0.0, 1.0

    def stats(a, b):
        return {"min": a, "max": b, "mean": (a + b) / 2, "std": (b - a) / 4}

    policy.normalizer.set_stats({OBS_STATE: stats(np.full(STATE_DIM, -1.0), np.full(STATE_DIM, 1.0)),
                                 ACTION: stats(lo, hi)})
    return policy


def small_cfg(tmp: Path, **kw) -> OnlineConfig:
    base = {"task": "juicing-place", "task_options": {"max_steps": 6}, "out": str(tmp / "run"), "iterations": 2,
            "n_envs": 2, "episodes_per_iter": 2, "minibatch_size": 4, "seed": 0, "device": "cpu",
            "ppo": {"lr": 1e-3, "epochs": 2, "lambda_cd": 1.0}, "value": {"hidden": 16, "layers": 1},
            "student_ema_decay": 0.9, "eval_episodes": 1}
    return OnlineConfig(**(base | kw))


def synthetic_batch(policy: DiffusionPolicy, n: int = 6, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    obs = {OBS_STATE: torch.rand(n, 2, STATE_DIM, generator=g) * 2 - 1}
    with torch.no_grad():
        _, chain = sample_chain(policy, policy.encode(obs), generator=g)
    adv = torch.randn(n, generator=g)
    returns = torch.randn(n, generator=g)
    return Batch(obs, chain, adv, returns, torch.zeros(n))


def flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


# --------------------------------------------------------------------------------------------- PPO, GAE, V
def test_first_epoch_ratio_is_exactly_one(tmp_path):
    """One minibatch per epoch: epoch 0 runs at the reference parameters, so every ratio is exactly 1."""
    policy = panda_policy()
    learner = make_learner(small_cfg(tmp_path, minibatch_size=64), policy, torch.device("cpu"))
    before = flat(learner.policy)
    logs = learner.update(synthetic_batch(learner.policy), torch.Generator().manual_seed(0))
    assert logs["ppo/ratio_mean_ref"] == 1.0 and logs["ppo/approx_kl_ref"] == 0.0 and logs["ppo/clipfrac_ref"] == 0.0
    assert logs["ppo/minibatch_steps"] == 2.0
    assert logs["ppo/ratio_mean"] != 1.0  # epoch 1 ran at updated parameters
    assert not torch.equal(before, flat(learner.policy))
    assert torch.equal(flat(policy), flat(panda_policy()))  # the learner trains a copy


def test_value_warmup_keeps_the_actor():
    policy = panda_policy()
    learner = make_learner(OnlineConfig(task="x", ppo={"lr": 1e-3}, value={"hidden": 16, "layers": 1}), policy,
                           torch.device("cpu"))
    before, v_before = flat(learner.policy), flat(learner.value)
    logs = learner.update(synthetic_batch(learner.policy), torch.Generator().manual_seed(0), train_actor=False)
    assert torch.equal(before, flat(learner.policy)) and not torch.equal(v_before, flat(learner.value))
    assert "value/loss" in logs and "ppo/loss" not in logs


def test_chunk_gae_hand_computed():
    """Episode 0: 3 chunks, terminates in the last one; episode 1: 2 chunks, truncated (bootstraps from V(s_end))."""
    g, lam = 0.9**2, 0.5  # gamma_env = 0.9, 2 executed steps per chunk
    r = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0])
    v = torch.tensor([0.2, 0.4, 0.6, 0.1, 0.3])
    final = torch.tensor([5.0, 0.7])  # episode 0's is ignored (terminal)
    term = torch.tensor([False, False, True, False, False])
    adv, ret = chunk_gae(r, v, final, term, [3, 2], g, lam)
    d = [0 + g * 0.4 - 0.2, 0 + g * 0.6 - 0.4, 1.0 - 0.6, 0 + g * 0.3 - 0.1, 0 + g * 0.7 - 0.3]
    a2 = d[2]
    a1 = d[1] + g * lam * a2
    a0 = d[0] + g * lam * a1
    a4 = d[4]
    a3 = d[3] + g * lam * a4
    torch.testing.assert_close(adv, torch.tensor([a0, a1, a2, a3, a4]))
    torch.testing.assert_close(ret, adv + v)
    with pytest.raises(ValueError, match="do not split"):
        chunk_gae(r, v, final, term, [3, 3], g, lam)


def test_value_clipping_gradients():
    """Inside the clip range the loss is the plain squared error; once V has moved past ``v_old + clip`` and the
    clipped prediction is the worse one, the sample gives no gradient (the trust region of the value update)."""
    old, ret = torch.tensor([0.0]), torch.tensor([1.0])
    inside = torch.tensor([0.1], requires_grad=True)
    clipped_value_loss(inside, old, ret, 0.2).backward()
    torch.testing.assert_close(inside.grad, inside.detach() - ret)  # d/dv 0.5 (v - R)^2
    past = torch.tensor([0.5], requires_grad=True)  # moved 0.5 > 0.2 towards R: clipped error 0.64 > 0.25
    loss = clipped_value_loss(past, old, ret, 0.2)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.5 * 0.8**2) and float(past.grad) == 0.0
    away = torch.tensor([-0.5], requires_grad=True)  # moved away from R: the unclipped error is larger, gradient on
    clipped_value_loss(away, old, ret, 0.2).backward()
    torch.testing.assert_close(away.grad, torch.tensor([-1.5]))


def test_value_warm_start_is_strict(tmp_path):
    policy = panda_policy()
    torch.manual_seed(1)
    critics = IQLCritics(policy.config, CriticConfig(hidden=16, layers=1))
    critics.normalizer.load_state_dict(policy.normalizer.state_dict())
    path = tmp_path / "critics.safetensors"
    save_tensors(path, critics.state_dict(), {"format": CRITICS_FORMAT})  # as offline_round writes it

    learner = make_learner(small_cfg(tmp_path, critics=str(path)), policy, torch.device("cpu"))
    for name in ("v", "encoder", "normalizer"):
        want, got = getattr(critics, name).state_dict(), getattr(learner.value, name).state_dict()
        assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    obs = {OBS_STATE: torch.rand(3, 2, STATE_DIM)}
    torch.testing.assert_close(learner.value(obs), critics.value(critics.features(obs)))

    with pytest.raises(CheckpointError, match=r"v\.0\.weight.*value\.hidden"):
        load_value_from_critics(ValueFunction(policy.config, hidden=32, layers=1), path)
    with pytest.raises(CheckpointError, match=r"missing keys \['v\.4\.bias'.*value\.layers"):
        load_value_from_critics(ValueFunction(policy.config, hidden=16, layers=2), path)
    save_policy(tmp_path / "p", policy)
    with pytest.raises(CheckpointError, match="not an IQL critics checkpoint"):
        load_value_from_critics(ValueFunction(policy.config, hidden=16, layers=1), tmp_path / "p.safetensors")


# --------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def sim_ok():
    pytest.importorskip("mujoco")
    pytest.importorskip("gymnasium_robotics")


def test_tiny_online_run_via_cli(sim_ok, tmp_path):
    """Two iterations on juicing-place (6-step episodes) through ``rl100 online``: artefacts, moved parameters."""
    from rl100.cli import main

    save_policy(tmp_path / "il", panda_policy())
    preset = tmp_path / "online_tiny.yaml"
    cfg = small_cfg(tmp_path).to_dict()
    preset.write_text(json.dumps({k: v for k, v in cfg.items() if k not in ("out", "policy", "task")}))
    out = tmp_path / "run"
    rc = main(["online", "--policy", str(tmp_path / "il.json"), "--task", "juicing-place", "--config", str(preset),
               "--out", str(out), "--set", "eval_sampler=mdp"])
    assert rc == 0
    for name in ("policy.json", "policy.safetensors", "policy_best.json", "student.json", "student.safetensors",
                 "value.safetensors", "state_policy.json", "state_value.json", "state_student.json", "metrics.csv",
                 "config.yaml", "result.json"):
        assert (out / name).exists(), name
    result = json.loads((out / "result.json").read_text())
    assert len(result["success"]) == 2 and len(result["rollout_success"]) == 2
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    for col in ("eval/success_rate", "eval_student/success_rate", "rollout/success_rate", "ppo/ratio_mean_ref",
                "value/loss", "distill/loss_cd"):
        assert col in header
    tuned = load_policy(out / "policy.json")
    assert not torch.equal(flat(tuned), flat(panda_policy()))
    assert load_policy(out / "student.json").kind == "consistency"
    v = ValueFunction(tuned.config, hidden=16, layers=1)
    load_value_from_critics(v, out / "value.safetensors")  # a later run can warm-start from it


def test_resume_equals_uninterrupted(sim_ok, tmp_path):
    from rl100.rl.online import online

    policy = panda_policy()
    kw = {"eval_episodes": 0, "ppo": {"lr": 1e-3, "epochs": 2}}
    online(small_cfg(tmp_path, out=str(tmp_path / "a"), **kw), policy=policy)
    assert online(small_cfg(tmp_path, out=str(tmp_path / "b"), **kw), policy=policy, stop_after=1) is None
    online(small_cfg(tmp_path, out=str(tmp_path / "b"), **kw), policy=policy, resume=True)
    a, b = load_policy(tmp_path / "a" / "policy.json"), load_policy(tmp_path / "b" / "policy.json")
    assert torch.equal(flat(a), flat(b))
    rows = (tmp_path / "b" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # header + one row per iteration, none duplicated by the resume


def test_resume_takes_the_new_learning_rate_and_length(sim_ok, tmp_path):
    """Continuing a finished run with another ppo.lr and more iterations uses them (the saved optimiser state
    must not silently keep the old rate)."""
    import csv

    from rl100.rl.online import online

    policy = panda_policy()
    out = str(tmp_path / "c")
    online(small_cfg(tmp_path, out=out, eval_episodes=0, ppo={"lr": 1e-3, "epochs": 1}), policy=policy)
    online(small_cfg(tmp_path, out=out, eval_episodes=0, iterations=3, ppo={"lr": 2e-4, "epochs": 1}),
           policy=policy, resume=True)
    with open(tmp_path / "c" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert float(rows[1]["charts/lr"]) == pytest.approx(1e-3)  # min_lr_ratio 1: constant rates
    assert float(rows[2]["charts/lr"]) == pytest.approx(2e-4)
    state = json.loads((tmp_path / "c" / "state_policy.json").read_text())
    assert state["scheduler"]["base_lrs"] == [2e-4] and state["scheduler"]["total_steps"] == 3


# --------------------------------------------------------------------------------------------- config
def test_config_validation_and_preset():
    cfg = load_online_config("online_small", ["ppo.lr=2e-6", "value.clip=0.1", "task_options.max_steps=50"],
                             task="juicing-place")
    assert cfg.ppo.lr == 2e-6 and cfg.value.clip == 0.1 and cfg.task_options == {"max_steps": 50}
    assert cfg.gae_lambda == 0.95 and cfg.denoising.sigma_max == 0.1
    with pytest.raises(ValueError, match="unknown online config fields"):
        load_online_config("online_small", ["bogus=1"])
    with pytest.raises(ValueError, match="eval_sampler"):
        OnlineConfig(eval_sampler="fast")
    with pytest.raises(ValueError, match="gamma"):
        OnlineConfig(gamma=0.0)
    with pytest.raises(ValueError, match="value.clip"):
        OnlineConfig(value={"clip": -1.0})
    with pytest.raises(ValueError, match="shove"):
        OnlineConfig(disturbances=["push_arm", "shove"])


def test_training_episodes_run_under_the_families_and_evaluation_does_not(tmp_path):
    from rl100.rl.online import make_envs

    cfg = small_cfg(tmp_path, disturbances=["none", "push_object"])
    policy = panda_policy()
    train = make_envs(cfg, policy, 2, seed=10)
    nominal = make_envs(cfg, policy, 1, seed=10, disturbed=False)[0]
    try:
        for env in train:
            env.reset(seed=11)
        assert [env.current for env in train] == ["push_object", "push_object"]
        assert not hasattr(nominal, "current") and nominal.unwrapped.disturbances is None
    finally:
        for env in (*train, nominal):
            env.close()
