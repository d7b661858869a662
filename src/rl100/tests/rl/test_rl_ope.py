"""The OPE gate: the acceptance rule, and one offline round (critics -> PPO -> AM-Q gate) on a tiny bandit.

A deliberately harmful update (negated advantages) lowers AM-Q's J and is rejected; the same round with the
true advantages raises J. The harmful round runs through the ``rl100 offline-round`` command line.
"""

from __future__ import annotations

import json

import pytest
import torch

from rl100.cli import main
from rl100.keys import OBS_STATE
from rl100.policy.checkpoint import load_policy, save_policy
from rl100.rl.denoising_mdp import DenoisingConfig, executed_actions
from rl100.rl.offline import OfflineConfig, chunk_policy, offline_round
from rl100.rl.ope import gate

SMALL = {"critic_steps": 150, "ppo_iters": 10, "batch_size": 32, "eval_states": 64, "amq_horizon": 2,
         "model_steps": 40, "model_members": 2, "device": "cpu", "log_every": 5}
NESTED = {"critic": {"hidden": 64, "gamma": 0.9, "lr": 3e-3}, "ppo": {"lr": 1e-3, "epochs": 4}}


def test_gate_rule():
    assert gate(10.6, 10.0)[0] and not gate(10.4, 10.0)[0]
    assert gate(-9.5, -10.0)[0] and not gate(-9.6, -10.0)[0]  # |J_old| scales the margin for negative J too
    assert gate(0.0, 0.0)[0] and not gate(-1e-9, 0.0)[0]
    ok, reason = gate(float("nan"), 1.0)
    assert not ok and "non-finite" in reason
    assert gate(1.0, 1.0, delta=0.0)[0]
    with pytest.raises(ValueError):
        gate(1.0, 1.0, delta=-0.1)


def test_harmful_update_rejected_helpful_improves(h, bandit_root, tmp_path):
    policy = h.make_policy(bandit_root)
    src = save_policy(tmp_path / "start" / "policy", policy)
    argv = ["offline-round", "--policy", str(src), "--dataset", str(bandit_root), "--out", str(tmp_path / "bad")]
    argv += [f"--set={k}={v}" for k, v in SMALL.items()] + ["--set=advantage_scale=-1", "--set=keep_candidate=true"]
    argv += [f"--set={sec}.{k}={v}" for sec, d in NESTED.items() for k, v in d.items()]
    assert main(argv) == 0
    bad = json.loads((tmp_path / "bad" / "result.json").read_text())
    assert not bad["accepted"] and bad["j_new"] < bad["j_old"], bad
    kept = load_policy(tmp_path / "bad" / "policy.json")  # rejected: the output is the unchanged policy
    for (k, a), b in zip(kept.state_dict().items(), policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert (tmp_path / "bad" / "metrics.csv").exists() and (tmp_path / "bad" / "critics.safetensors").exists()
    candidate = load_policy(tmp_path / "bad" / "candidate.json")  # the update the gate judged, kept for a look
    assert any(not torch.equal(a, b) for a, b in zip(candidate.state_dict().values(),
                                                     policy.state_dict().values(), strict=True))

    good = offline_round(OfflineConfig(dataset=str(bandit_root), out=str(tmp_path / "good"), **SMALL, **NESTED),
                         policy=policy)
    assert good.j_new > good.j_old
    assert good.j_new - good.j_old > bad["j_new"] - bad["j_old"]
    assert good.j_old == pytest.approx(bad["j_old"], rel=1e-5)  # same seed: same critics, same start states


def test_gate_scores_the_deployed_sampler(h, bandit_root):
    """The gate's default policy is what the exported DDIM graph computes from the same x_T (the step means at
    the policy's eta); the stochastic MDP sampler gives other chunks."""
    policy = h.make_policy(bandit_root).eval()
    obs = {OBS_STATE: torch.randn(5, 2, h.STATE_DIM)}
    dcfg = DenoisingConfig(sigma_min=0.05)
    deployed = chunk_policy(policy, dcfg, seed=3, sampler="deployed")(obs)  # (B, n, Da)
    with torch.no_grad():
        cond = policy.encode(obs)
        x_t = torch.randn((5, policy.config.horizon, h.ACTION_DIM), generator=torch.Generator().manual_seed(3))
        want = executed_actions(policy, policy.sample_normalized(cond, x_t, stochastic=False))
    assert not policy.config.step_noise and policy.config.eta == 1.0
    assert torch.allclose(deployed, want, atol=1e-6)
    assert torch.equal(deployed, chunk_policy(policy, dcfg, seed=3, sampler="deployed")(obs))  # common numbers
    mdp = chunk_policy(policy, dcfg, seed=3, sampler="mdp")(obs)
    assert mdp.shape == deployed.shape and (mdp - deployed).abs().max() > 1e-3
    with pytest.raises(ValueError, match="sampler"):
        chunk_policy(policy, dcfg, seed=3, sampler="ddpm")

    noisy = h.make_policy(bandit_root, step_noise=True).eval()  # deployed with step noise: still common numbers
    a, b = (chunk_policy(noisy, dcfg, seed=3, sampler="deployed")(obs) for _ in range(2))
    assert noisy.config.stochastic and torch.equal(a, b)
    assert not torch.equal(a, chunk_policy(noisy, dcfg, seed=4, sampler="deployed")(obs))


def test_config_validation(bandit_root):
    with pytest.raises(ValueError):
        OfflineConfig(dataset=str(bandit_root), ppo_iters=0)
    with pytest.raises(ValueError):
        OfflineConfig(dataset=str(bandit_root), ppo={"clip": 1.5})
    with pytest.raises(TypeError):
        OfflineConfig(dataset=str(bandit_root), critic={"no_such_field": 1})
    with pytest.raises(ValueError, match="ope_sampler"):
        OfflineConfig(dataset=str(bandit_root), ope_sampler="eta0")
    assert OBS_STATE  # the tiny dataset's only observation key
