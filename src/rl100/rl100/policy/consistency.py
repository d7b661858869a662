"""One-step consistency policy distilled from a K-step DDIM teacher.

Student ``C(x, tau, obs) = c_skip(tau) x + c_out(tau) F(x, tau, obs)`` (LCM parameterisation: ``c_skip(0) = 1``,
``c_out(0) = 0``, so the boundary condition ``C(x, 0) = x`` holds by construction). ``F`` is a U-Net with
the teacher's architecture (initialised from the teacher's weights by default).

:func:`distillation_loss` (RL-100's public code): from the *same* initial noise ``x_T``, the student's one
step must match the teacher's deterministic K-step DDIM chain: ``||C(x_T, t_0) - sg[chain(x_T)]||^2``. That
chain is the teacher's own deployed sampler when it is deterministic (any eta without step noise; see
:func:`teacher_chain_eta`), else the probability-flow one (eta = 0).
Optional LCM-style trajectory term (``traj_weight > 0``): a random intermediate state ``x^{t_k}`` of the same
teacher chain must map to the same endpoint, ``||C(x^{t_k}, t_k) - sg[chain(x_T)]||^2`` (self-consistency along
the teacher chain's trajectory, anchored by the boundary condition). Both are in normalised action space.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch

from rl100.policy.base import PolicyBase
from rl100.policy.config import PolicyConfig
from rl100.policy.diffusion import DiffusionPolicy

KIND = "consistency"
SIGMA_DATA = 0.5
TIME_SCALE = 10.0  # LCM's timestep scaling: c_skip ~ 0 for every t >= 1


class ConsistencyPolicy(PolicyBase):
    kind = KIND

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__(config)
        self.t_start = self.schedule.ddim_timesteps(config.num_inference_steps)[0]  # the teacher chain's first t

    @classmethod
    def from_teacher(cls, teacher: DiffusionPolicy, init_weights: bool = True) -> ConsistencyPolicy:
        student = cls(copy.deepcopy(teacher.config))
        if init_weights:
            student.load_state_dict(teacher.state_dict(), strict=True)
        else:
            student.normalizer.load_state_dict(teacher.normalizer.state_dict())
        return student

    def consistency(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """``C(x, t)``: x (B, Ta, Da), t (B,) float timesteps, cond (B, C) -> normalised x_0 estimate (B, Ta, Da).

        ``clip``: clamp to [-1, 1] when the config says ``clip_sample`` (sampling). Training losses pass False: a
        clamped output has no gradient, so a student that overshoots the range where its target lies inside it
        would never be pulled back (it happened: gripper outputs stuck above 1 against targets near 0).
        """
        s = (t.to(x.dtype) * TIME_SCALE).reshape(-1, 1, 1)
        c_skip = SIGMA_DATA**2 / (s**2 + SIGMA_DATA**2)
        c_out = s / (s**2 + SIGMA_DATA**2).sqrt()
        out = c_skip * x + c_out * self.unet(x, t, cond)
        return out.clamp(-1.0, 1.0) if clip and self.config.clip_sample else out

    def sample_normalized(self, cond: torch.Tensor, noise: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """One-step sample: cond (B, C), noise x_T (B, Ta, Da) -> normalised actions (B, Ta, Da); ``clip`` as in
        :meth:`consistency`."""
        t = torch.full((noise.shape[0],), float(self.t_start), device=noise.device)
        return self.consistency(noise, t, cond, clip=clip)

    @torch.no_grad()
    def predict_action(self, obs: Mapping[str, torch.Tensor], noise: torch.Tensor | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Raw observations (B, To, ...) -> unnormalised action chunk (B, Ta, Da), one network evaluation."""
        cond = self.encode(obs)
        if noise is None:
            shape = (cond.shape[0], self.config.horizon, self.config.action_dim)
            noise = torch.randn(shape, generator=generator, device=cond.device)
        return self.normalizer.action.inverse(self.sample_normalized(cond, noise))

    def forward(self, obs: Mapping[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
        return self.predict_action(obs, noise)


def teacher_chain_eta(config: PolicyConfig) -> float:
    """The eta of the deterministic teacher chain the student learns: the teacher's deployed one unless it adds
    step noise (then its chain is no function of ``x_T`` and the probability-flow chain, eta = 0, is used)."""
    return 0.0 if config.stochastic else config.eta


def distillation_loss(student: ConsistencyPolicy, teacher: DiffusionPolicy, batch: Mapping[str, torch.Tensor],
                      traj_weight: float = 0.0, generator: torch.Generator | None = None,
                      noise: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Consistency-distillation loss (differentiable w.r.t. the student only) and scalar logs.

    ``batch``: raw observations (B, To, ...) (an action key, if present, is ignored). ``noise``: x_T (B, Ta, Da).
    """
    cfg = teacher.config
    with torch.no_grad():
        t_cond = teacher.encode(batch)
        b = t_cond.shape[0]
        if noise is None:
            noise = torch.randn((b, cfg.horizon, cfg.action_dim), generator=generator, device=t_cond.device)
        target, chain = teacher.sample_normalized(t_cond, noise, eta=teacher_chain_eta(cfg), return_chain=True,
                                                  stochastic=False)
    cond = student.encode(batch)
    pred = student.sample_normalized(cond, noise, clip=False)  # unclamped: overshoot keeps its gradient
    loss_cd = (pred - target).square().mean()
    logs = {"distill/loss_cd": float(loss_cd.detach())}
    loss = loss_cd
    if traj_weight > 0:
        ts = teacher.schedule.ddim_timesteps(cfg.num_inference_steps)
        if len(ts) > 1:
            k = torch.randint(1, len(ts), (b,), generator=generator).to(noise.device)  # (B,) states x^{t_k}, k >= 1
            states = torch.stack(chain[:-1], dim=1)  # (B, K, Ta, Da): state i is the input of step i (timestep ts[i])
            xk = states[torch.arange(b, device=noise.device), k]
            tk = torch.as_tensor(ts, dtype=torch.float32, device=noise.device)[k]
            loss_traj = (student.consistency(xk, tk, cond, clip=False) - target).square().mean()
            loss = loss + traj_weight * loss_traj
            logs["distill/loss_traj"] = float(loss_traj.detach())
    logs["distill/loss"] = float(loss.detach())
    return loss, logs


