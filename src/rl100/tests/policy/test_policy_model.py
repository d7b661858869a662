"""Shapes, normaliser, EMA, consistency student, checkpoints (save -> load identical, strict errors)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from rl100.keys import ACTION, OBS_POINTS, OBS_RGB, OBS_STATE
from rl100.policy.checkpoint import CheckpointError, load_policy, save_policy
from rl100.policy.consistency import ConsistencyPolicy, distillation_loss
from rl100.policy.diffusion import DiffusionPolicy
from rl100.policy.ema import EMA


def _batch(cfg, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for o in cfg.obs:
        shape = (b, cfg.n_obs, *o.shape)
        out[o.key] = (torch.randint(0, 256, shape, generator=g, dtype=torch.uint8) if o.dtype == "uint8"
                      else torch.randn(shape, generator=g))
    out[ACTION] = torch.rand(b, cfg.horizon, cfg.action_dim, generator=g)
    return out


def test_shapes_all_encoders(h):
    cfg = h.tiny_config("all")
    model = DiffusionPolicy(cfg)
    batch = _batch(cfg)
    assert set(batch) == {OBS_STATE, OBS_POINTS, OBS_RGB, ACTION}
    assert model.encode(batch).shape == (3, cfg.n_obs * 16 * 3)
    loss = model.compute_loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.predict_action(batch).shape == (3, cfg.horizon, cfg.action_dim)
    student = ConsistencyPolicy.from_teacher(model)
    assert student.predict_action(batch).shape == (3, cfg.horizon, cfg.action_dim)
    # longer history than n_obs: only the last n_obs steps are used
    longer = {k: torch.cat([v[:, :1], v], 1) if k != ACTION else v for k, v in batch.items()}
    noise = torch.randn(3, cfg.horizon, cfg.action_dim)
    torch.testing.assert_close(model.predict_action(longer, noise), model.predict_action(batch, noise))


def test_normalizer_minmax_roundtrip(h):
    model = DiffusionPolicy(h.tiny_config())
    stats = {OBS_STATE: {"min": np.array([-2.0, 0.0, 5.0]), "max": np.array([2.0, 1.0, 5.0]),
                         "mean": np.zeros(3), "std": np.ones(3)},
             ACTION: {"min": np.array([0.0, -10.0]), "max": np.array([1.0, 10.0]), "mean": np.zeros(2),
                      "std": np.ones(2)}}
    model.normalizer.set_stats(stats)
    x = torch.tensor([[-2.0, 0.0, 5.0], [2.0, 1.0, 5.0]])
    torch.testing.assert_close(model.normalizer.obs["observation__state"](x), torch.tensor([[-1.0, -1, 0], [1, 1, 0]]))
    a = torch.tensor([[0.25, 3.0]])
    torch.testing.assert_close(model.normalizer.action.inverse(model.normalizer.action(a)), a)
    with pytest.raises(ValueError, match="missing"):
        model.normalizer.set_stats({ACTION: stats[ACTION]})


def test_ema_tracks_and_warms_up(h):
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, max_decay=0.9)
    assert ema.decay() == pytest.approx(0.1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(200):
        ema.update(model)
    torch.testing.assert_close(ema.model.weight, torch.ones(2, 2), atol=1e-6, rtol=0)
    assert ema.decay() == 0.9


def test_consistency_boundary_and_distillation_grads(h):
    cfg = h.tiny_config()
    teacher = DiffusionPolicy(cfg).eval()
    student = ConsistencyPolicy.from_teacher(teacher)
    x = torch.rand(2, cfg.horizon, cfg.action_dim) * 2 - 1
    cond = student.encode(_batch(cfg, 2))
    torch.testing.assert_close(student.consistency(x, torch.zeros(2), cond), x)  # C(x, 0) = x
    loss, logs = distillation_loss(student, teacher, _batch(cfg), traj_weight=0.5)
    loss.backward()
    assert {"distill/loss_cd", "distill/loss_traj", "distill/loss"} <= set(logs)
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.unet.parameters())


@pytest.mark.parametrize("eta,step_noise,chain_eta", [(1.0, False, 1.0), (1.0, True, 0.0), (0.0, False, 0.0)])
def test_distillation_target_is_the_teachers_deterministic_sampler(h, eta, step_noise, chain_eta):
    """A teacher deployed with a deterministic eta > 0 sampler (step means) is distilled as deployed; a teacher
    that adds step noise has no deterministic chain of its own, and the probability-flow one (eta 0) is used."""
    teacher = DiffusionPolicy(h.tiny_config(eta=eta, step_noise=step_noise)).eval()
    student = ConsistencyPolicy.from_teacher(teacher)
    batch = _batch(teacher.config)
    noise = torch.randn(3, teacher.config.horizon, teacher.config.action_dim)
    loss, _ = distillation_loss(student, teacher, batch, noise=noise)
    with torch.no_grad():
        target = teacher.sample_normalized(teacher.encode(batch), noise, eta=chain_eta, stochastic=False)
        pred = student.sample_normalized(student.encode(batch), noise, clip=False)
    assert loss.item() == pytest.approx((pred - target).square().mean().item(), rel=1e-5)


def test_distillation_pulls_back_a_student_that_overshoots_the_clip_range(h):
    """With ``clip_sample`` the deployed student clamps to [-1, 1], but the loss must see the raw output: a clamped
    overshoot has no gradient and the student would stay stuck beyond the range (a round's CM scored 0 %)."""
    teacher = DiffusionPolicy(h.tiny_config()).eval()
    assert teacher.config.clip_sample
    student = ConsistencyPolicy.from_teacher(teacher)
    student.unet.register_forward_hook(lambda module, args, out: out + 100.0)  # every output far above 1
    batch = _batch(teacher.config)
    loss, _ = distillation_loss(student, teacher, batch, traj_weight=0.5)
    loss.backward()
    assert loss.item() > 100.0  # the overshoot is in the loss, not hidden by the clamp (which would give <= 4)
    grads = [p.grad.abs().sum() for p in student.unet.parameters() if p.grad is not None]
    assert grads and sum(grads) > 0
    with torch.no_grad():  # sampling still clamps
        noise = torch.zeros(3, teacher.config.horizon, teacher.config.action_dim)
        assert student.sample_normalized(student.encode(batch), noise).max().item() == 1.0


def test_step_noise_decides_whether_the_sampler_is_stochastic(h):
    """eta = 1 without step noise: every step's mean, so the same x_T gives the same actions (and not eta 0's);
    with step noise two calls differ."""
    batch = _batch(h.tiny_config())
    noise = torch.randn(3, 8, h.tiny_config().action_dim)
    out = {}
    for eta, step_noise in ((0.0, False), (1.0, False), (1.0, True)):
        torch.manual_seed(0)
        policy = DiffusionPolicy(h.tiny_config(eta=eta, step_noise=step_noise)).eval()
        first, second = policy.predict_action(batch, noise), policy.predict_action(batch, noise)
        assert torch.equal(first, second) == (not policy.config.stochastic)
        out[eta, step_noise] = first
    assert not torch.allclose(out[0.0, False], out[1.0, False], atol=1e-4)


@pytest.mark.parametrize("cls", [DiffusionPolicy, ConsistencyPolicy])
def test_save_load_identical_actions(h, tmp_path, cls):
    cfg = h.tiny_config("all")
    model = cls(cfg).eval()
    with torch.no_grad():
        model.normalizer.action.scale.fill_(0.5)  # non-default buffers must travel too
    path = save_policy(tmp_path / "p", model, {"note": "x"})
    meta = json.loads(path.read_text())
    assert meta["kind"] == cls.kind and meta["meta"] == {"note": "x"} and "normalizer" in meta
    loaded = load_policy(tmp_path / "p.json")
    assert type(loaded) is cls
    batch = _batch(cfg)
    noise = torch.randn(3, cfg.horizon, cfg.action_dim)
    torch.testing.assert_close(loaded.predict_action(batch, noise), model.predict_action(batch, noise), atol=0, rtol=0)


def test_strict_load_names_keys(h, tmp_path):
    model = DiffusionPolicy(h.tiny_config())
    save_policy(tmp_path / "p", model)
    tensors = load_file(str(tmp_path / "p.safetensors"))
    removed = "unet.final.1.bias"
    del tensors[removed]
    tensors["unet.extra.weight"] = torch.zeros(1)
    save_file(tensors, str(tmp_path / "p.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing keys \['unet\.final\.1\.bias'\].*unexpected keys"):
        load_policy(tmp_path / "p")
    tensors = {k: v for k, v in load_file(str(tmp_path / "p.safetensors")).items() if k != "unet.extra.weight"}
    tensors[removed] = torch.zeros(5)
    save_file(tensors, str(tmp_path / "p.safetensors"))
    with pytest.raises(CheckpointError, match="unet.final.1.bias: checkpoint \\(5,\\)"):
        load_policy(tmp_path / "p")
