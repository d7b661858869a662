"""Observation augmentation for training: the sensor errors a deployed policy meets, drawn per sample.

The shipped imitation policy fails when proprioception is a few millimetres off or the camera was knocked
after calibration (BENCHMARKS.md, robustness): demonstrations never show either. :class:`Augmenter` perturbs
each training window's observations the way those families do, in physical units, before the policy
normalises them:

- proprioception (``observation.state``: TCP position (3), TCP quaternion xyzw (4), gripper width (1), joints
  (7)): Gaussian noise on position, width and joints, a random small rotation of the orientation -- fresh for
  every frame of the observation history, like sensor noise;
- point clouds (``observation.points``, (N, 3) in the robot base frame): per-point Gaussian jitter and point
  dropout (a dropped point becomes a copy of another point of the same cloud, so N stays fixed), fresh per
  frame; and one rigid transform per window (a rotation about the cloud's centroid plus a translation), the
  same for every frame of the window, like a camera whose pose is off for the whole episode.

Randomness comes from a generator seeded by ``(seed, step)``, so a resumed run draws what the uninterrupted run
drew. :func:`widen_normalizer` widens the model's min-max state ranges by the noise a channel receives: a
channel that barely varies in the demonstrations (the TCP quaternion spans ~1e-3 there, floored at 1e-2 by the
normaliser) would otherwise map a 0.015 rad perturbation well outside [-1, 1].

Shapes: B batch, To observation frames, N points, D = 15 state channels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from rl100.keys import OBS_POINTS, OBS_STATE

STATE_POS, STATE_QUAT, STATE_WIDTH, STATE_JOINTS = slice(0, 3), slice(3, 7), 7, slice(8, 15)
STATE_DIM = 15
WIDEN_SIGMAS = 3.0  # widen_stats: ranges grow by this many noise standard deviations on each side


@dataclass
class AugmentConfig:
    """Magnitudes of each perturbation; all 0 (the default) is no augmentation."""

    prob: float = 1.0
    """fraction of windows augmented (the rest are left as recorded)"""
    state_pos_std: float = 0.0
    """m, on the TCP position and the gripper width"""
    state_rot_std: float = 0.0
    """rad, rotation vector ~ N(0, std^2 I) applied to the TCP orientation"""
    state_joint_std: float = 0.0
    """rad, on the joint angles"""
    points_std: float = 0.0
    """m, per-point jitter"""
    points_dropout: float = 0.0
    """fraction of each cloud's points replaced by copies of other points"""
    points_shift: float = 0.0
    """m, rigid translation per window, uniform in [-shift, shift] on each axis"""
    points_rotation: float = 0.0
    """deg, rigid rotation per window about the cloud centroid, angle uniform in [0, rotation], random axis"""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"augment.{name} must be a finite number >= 0, got {value!r}")
        if self.prob > 1 or self.points_dropout >= 1 or self.points_rotation > 90:
            raise ValueError(f"augment: prob must be <= 1, points_dropout < 1, points_rotation <= 90 deg; got "
                             f"{self.prob}, {self.points_dropout}, {self.points_rotation}")

    @property
    def active(self) -> bool:
        return self.prob > 0 and any(v > 0 for k, v in asdict(self).items() if k != "prob")


def _rotvec_to_matrix(rv: torch.Tensor) -> torch.Tensor:
    """(..., 3) rotation vectors -> (..., 3, 3) rotation matrices (Rodrigues)."""
    angle = rv.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # (..., 1)
    k = rv / angle
    kx, ky, kz = k.unbind(-1)
    zero = torch.zeros_like(kx)
    skew = torch.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], dim=-1).reshape(*rv.shape[:-1], 3, 3)
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=rv.dtype, device=rv.device).expand_as(skew)
    return eye + s * skew + (1 - c) * (skew @ skew)


def _quat_mul_xyzw(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of (..., 4) xyzw quaternions."""
    ax, ay, az, aw = a.unbind(-1)
    bx, by, bz, bw = b.unbind(-1)
    return torch.stack([aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw,
                        aw * bw - ax * bx - ay * by - az * bz], dim=-1)


class Augmenter:
    """``augmenter(batch, step) -> batch`` with the observations perturbed (other keys untouched)."""

    def __init__(self, config: AugmentConfig, seed: int = 0) -> None:
        self.config, self.seed = config, int(seed)

    def __call__(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        out = dict(batch)
        cfg = self.config
        if not cfg.active:
            return out
        ref = next(iter(batch.values()))
        gen = torch.Generator(device=ref.device).manual_seed(self.seed * 1_000_003 + int(step))
        b = ref.shape[0]
        chosen = torch.rand(b, generator=gen, device=ref.device) < cfg.prob  # (B,)
        if max(cfg.state_pos_std, cfg.state_rot_std, cfg.state_joint_std) > 0:
            if OBS_STATE not in batch or batch[OBS_STATE].shape[-1] != STATE_DIM:
                shape = tuple(batch[OBS_STATE].shape) if OBS_STATE in batch else None
                raise ValueError(f"augment.state_*: needs the {STATE_DIM}-d robot state in {OBS_STATE} "
                                 f"(TCP position, quaternion, width, joints); the batch has {shape}")
            out[OBS_STATE] = self._state(batch[OBS_STATE], chosen, gen)
        if max(cfg.points_std, cfg.points_dropout, cfg.points_shift, cfg.points_rotation) > 0:
            if OBS_POINTS not in batch:
                raise ValueError(f"augment.points_*: the policy has no {OBS_POINTS} input")
            out[OBS_POINTS] = self._points(batch[OBS_POINTS], chosen, gen)
        return out

    def _state(self, state: torch.Tensor, chosen: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """(B, To, 15) -> (B, To, 15)."""
        cfg = self.config
        s = state.float().clone()
        noise = torch.zeros_like(s)
        randn = lambda *shape: torch.randn(*shape, generator=gen, device=s.device)  # noqa: E731
        noise[..., STATE_POS] = randn(*s.shape[:-1], 3) * cfg.state_pos_std
        noise[..., STATE_WIDTH] = randn(*s.shape[:-1]) * cfg.state_pos_std
        noise[..., STATE_JOINTS] = randn(*s.shape[:-1], 7) * cfg.state_joint_std
        s = s + noise * chosen[:, None, None]
        s[..., STATE_WIDTH] = s[..., STATE_WIDTH].clamp_min(0.0)
        if cfg.state_rot_std > 0:
            rv = randn(*s.shape[:-1], 3) * cfg.state_rot_std * chosen[:, None, None]  # (B, To, 3)
            half = rv.norm(dim=-1, keepdim=True) / 2
            axis = rv / rv.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            dq = torch.cat([axis * torch.sin(half), torch.cos(half)], dim=-1)  # (B, To, 4) xyzw
            q = s[..., STATE_QUAT]
            rotated = _quat_mul_xyzw(dq, q)
            sign = torch.where((rotated * q).sum(-1, keepdim=True) < 0, -1.0, 1.0)  # keep the recorded sign
            s[..., STATE_QUAT] = rotated * sign
        return s.to(state.dtype)

    def _points(self, points: torch.Tensor, chosen: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """(B, To, N, 3) -> (B, To, N, 3)."""
        cfg = self.config
        p = points.float()
        b, to, n, _ = p.shape
        mask = chosen[:, None, None, None]
        if cfg.points_dropout > 0:
            drop = torch.rand(b, to, n, generator=gen, device=p.device) < cfg.points_dropout  # (B, To, N)
            donor = torch.randint(0, n, (b, to, n), generator=gen, device=p.device)
            replaced = torch.gather(p, 2, donor[..., None].expand(-1, -1, -1, 3))
            p = torch.where((drop[..., None] & mask), replaced, p)
        if cfg.points_std > 0:
            p = p + torch.randn(p.shape, generator=gen, device=p.device) * cfg.points_std * mask
        if cfg.points_rotation > 0 or cfg.points_shift > 0:
            axis = torch.randn(b, 3, generator=gen, device=p.device)
            axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            angle = torch.rand(b, 1, generator=gen, device=p.device) * math.radians(cfg.points_rotation)
            rot = _rotvec_to_matrix(axis * angle * chosen[:, None])  # (B, 3, 3)
            shift = (torch.rand(b, 3, generator=gen, device=p.device) * 2 - 1) * cfg.points_shift * chosen[:, None]
            centre = p.mean(dim=(1, 2), keepdim=True)  # (B, 1, 1, 3): one pivot per window
            moved = (p - centre) @ rot[:, None].transpose(-1, -2) + centre + shift[:, None, None]
            p = torch.where(mask, moved, p)  # windows left as recorded stay bit for bit
        return p.to(points.dtype)


def widen_normalizer(normalizer: Any, config: AugmentConfig) -> bool:
    """Widen the model's min-max state normaliser by the state noise; True if it changed.

    ``normalizer``: :class:`rl100.policy.normalizer.Normalizer`. Each augmented state channel's [min, max] (read
    back from its scale and offset) grows by ``WIDEN_SIGMAS`` noise standard deviations on both sides (a
    quaternion component moves by up to half the rotation angle). Point clouds are left alone: they span the
    task's crop box, much wider than their perturbations.
    """
    from rl100.policy.normalizer import module_name

    name = module_name(OBS_STATE)
    if not config.active or name not in normalizer.obs:
        return False
    norm = normalizer.obs[name]
    if norm.mode != "minmax" or norm.scale.shape[-1] != STATE_DIM:
        return False
    scale = norm.scale.detach().cpu().double().numpy()
    offset = norm.offset.detach().cpu().double().numpy()
    lo, hi = (-1.0 - offset) / scale, (1.0 - offset) / scale
    pad = np.zeros(STATE_DIM)
    pad[STATE_POS] = config.state_pos_std
    pad[STATE_WIDTH] = config.state_pos_std
    pad[STATE_QUAT] = config.state_rot_std / 2
    pad[STATE_JOINTS] = config.state_joint_std
    norm.set_stats({"min": lo - WIDEN_SIGMAS * pad, "max": hi + WIDEN_SIGMAS * pad})
    return bool(np.any(pad > 0))
