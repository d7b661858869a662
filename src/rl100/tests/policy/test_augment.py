"""Training-time observation augmentation: what each perturbation does, determinism, the normaliser widening."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl100.data import DatasetWriter
from rl100.keys import ACTION, FLAG_DEMO, OBS_POINTS, OBS_STATE
from rl100.train.augment import STATE_QUAT, AugmentConfig, Augmenter, widen_normalizer


def _batch(b: int = 64, to: int = 2, n: int = 48, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = torch.rand(b, to, 15, generator=g)
    quat = torch.tensor([1.0, 0.0, 0.0, 0.0])  # xyzw: the tool pointing down, as in the demos
    state[..., STATE_QUAT] = quat
    points = torch.rand(b, 1, n, 3, generator=g).expand(b, to, n, 3).clone()  # a static scene
    return {OBS_STATE: state, OBS_POINTS: points, ACTION: torch.rand(b, 8, 7, generator=g)}


def test_no_augmentation_is_the_identity():
    batch = _batch()
    out = Augmenter(AugmentConfig())(batch, 3)
    assert all(torch.equal(out[k], batch[k]) for k in batch)
    with pytest.raises(ValueError, match="state_pos_std"):
        AugmentConfig(state_pos_std=-1.0)
    with pytest.raises(ValueError, match="points_dropout"):
        AugmentConfig(points_dropout=1.0)
    no_state = {k: v for k, v in batch.items() if k != OBS_STATE}
    with pytest.raises(ValueError, match="15-d robot state"):  # asked for, but nothing to apply it to
        Augmenter(AugmentConfig(state_pos_std=0.01))(no_state, 0)
    with pytest.raises(ValueError, match="no observation.points"):
        Augmenter(AugmentConfig(points_std=0.01))({OBS_STATE: batch[OBS_STATE]}, 0)


def test_state_noise_has_the_asked_size_and_keeps_unit_quaternions():
    batch = _batch(b=2000)
    cfg = AugmentConfig(state_pos_std=0.003, state_rot_std=0.015, state_joint_std=0.005)
    out = Augmenter(cfg, seed=1)(batch, 7)
    d = out[OBS_STATE] - batch[OBS_STATE]
    assert d[..., 0:3].std().item() == pytest.approx(0.003, rel=0.05)
    assert d[..., 8:15].std().item() == pytest.approx(0.005, rel=0.05)
    q = out[OBS_STATE][..., STATE_QUAT]
    assert torch.allclose(q.norm(dim=-1), torch.ones(q.shape[:-1]), atol=1e-5)
    angle = 2 * torch.acos((q * batch[OBS_STATE][..., STATE_QUAT]).sum(-1).clamp(max=1.0))  # rotation applied
    assert angle.mean().item() == pytest.approx(0.015 * np.sqrt(8 / np.pi), rel=0.05)  # chi(3) mean * std
    assert (q[..., 0] > 0).all()  # the recorded sign convention is kept
    assert torch.equal(out[ACTION], batch[ACTION])
    again = Augmenter(cfg, seed=1)(batch, 7)[OBS_STATE]
    other = Augmenter(cfg, seed=1)(batch, 8)[OBS_STATE]
    assert torch.equal(again, out[OBS_STATE]) and not torch.equal(other, out[OBS_STATE])


def test_prob_leaves_the_other_windows_as_recorded():
    batch = _batch(b=400)
    out = Augmenter(AugmentConfig(prob=0.25, state_pos_std=0.01, points_shift=0.02), seed=0)(batch, 0)
    changed = (out[OBS_STATE] != batch[OBS_STATE]).flatten(1).any(1)
    moved = (out[OBS_POINTS] != batch[OBS_POINTS]).flatten(1).any(1)
    assert torch.equal(changed, moved)  # one draw decides a window
    assert 0.15 < changed.float().mean().item() < 0.35


def test_rigid_cloud_transform_is_one_per_window_and_keeps_shapes():
    batch = _batch(b=16)
    out = Augmenter(AugmentConfig(points_shift=0.015, points_rotation=3.0), seed=2)(batch, 0)[OBS_POINTS]
    p, q = batch[OBS_POINTS], out
    dist = lambda x: torch.cdist(x, x, compute_mode='donot_use_mm_for_euclid_dist')  # noqa: E731
    assert torch.allclose(dist(q), dist(p), atol=1e-5)  # rigid
    assert torch.allclose(q[:, 0], q[:, 1])  # the same transform for every frame of a window
    shift = (q.mean(2) - p.mean(2)).abs()
    assert (shift <= 0.015 + 1e-5).all() and shift.max() > 0.005
    assert not torch.allclose(q[0], p[0])


def test_dropout_copies_points_of_the_same_cloud():
    batch = _batch(b=8, n=200)
    out = Augmenter(AugmentConfig(points_dropout=0.3), seed=3)(batch, 0)[OBS_POINTS]
    p = batch[OBS_POINTS]
    same = (out == p).all(-1)  # (B, To, N) kept points
    assert 0.6 < same.float().mean().item() < 0.8
    exact = 'donot_use_mm_for_euclid_dist'
    member = (torch.cdist(out, p, compute_mode=exact) < 1e-7).any(-1)  # every point is one of the cloud's
    assert member.all()


def _state_dataset(root, episodes=6, length=20, spread=1.0):
    rng = np.random.default_rng(0)
    with DatasetWriter(root, meta={"task": "synthetic-15d"}) as w:
        for _ in range(episodes):
            ep = w.begin_episode(meta={"source": "synthetic"})
            for _t in range(length):
                s = rng.uniform(-spread, spread, 15).astype(np.float32)
                s[3:7] = [1.0, 0.0, 0.0, 0.0]  # a constant orientation, as in top-down demos
                ep.add_step({OBS_STATE: s}, rng.uniform(-1, 1, 7).astype(np.float32), 0.0, FLAG_DEMO)
            ep.end(success=True)
    return root


def test_training_widens_the_state_range_once(tmp_path):
    from rl100.policy.checkpoint import load_policy, read_policy_json
    from rl100.train.config import load_config
    from rl100.train.il import train_il

    data = _state_dataset(tmp_path / "data")
    aug = ["train.augment={state_pos_std: 0.003, state_rot_std: 0.015}", "train.batch_size=8",
           "train.warmup_steps=1", "policy.down_dims=[16,32]", "policy.n_groups=8"]

    def run(name, overrides, init=""):
        cfg = load_config("il_state_small", overrides, dataset=str(data), out=str(tmp_path / name), steps=2,
                          init=init or None)
        return train_il(cfg, progress=False)

    plain = load_policy(run("plain", aug[1:]))
    widened = load_policy(run("aug", aug))
    assert read_policy_json(tmp_path / "aug" / "policy.json")["meta"]["augment"] == {
        "state_pos_std": 0.003, "state_rot_std": 0.015}
    sp, sw = (m.normalizer.obs["observation__state"].scale for m in (plain, widened))
    assert (sw[3:7] < sp[3:7] / 4).all()  # quaternion range 0.01 -> 0.01 + 2 * 3 * 0.0075
    assert torch.allclose(sw[8:15], sp[8:15])  # joints not augmented: unchanged
    again = load_policy(run("reil", aug, init=str(tmp_path / "aug" / "policy.json")))
    assert torch.equal(again.normalizer.obs["observation__state"].scale, sw)  # not widened twice
    with pytest.raises(ValueError, match="augment"):
        load_config("il_state_small", ["train.augment={bogus: 1}"], dataset=str(data))
    # refit_normalizer: re-imitation on data twice as wide fits the normaliser to it (the init's is kept otherwise)
    data = _state_dataset(tmp_path / "wide", spread=2.0)
    kept = load_policy(run("kept", aug[1:], init=str(tmp_path / "plain" / "policy.json")))
    refit = load_policy(run("refit", [*aug[1:], "train.refit_normalizer=true"],
                            init=str(tmp_path / "plain" / "policy.json")))
    fresh = load_policy(run("fresh", aug[1:]))
    sk, sr, sf = (m.normalizer.obs["observation__state"].scale for m in (kept, refit, fresh))
    assert torch.equal(sk, sp) and torch.equal(sr, sf)
    assert torch.allclose(sr[8:15], sp[8:15] / 2, rtol=0.05)  # joints: range doubled
    _ = widen_normalizer  # the function the runs above go through
