"""PPO over the denoising MDP: one clipped ratio per denoising step, the same environment advantage for all K.

For a batch of states with recorded chains (sampled by the frozen reference / behaviour policy, whose per-step
log-probs are ``old_logp``)::

    r_k = exp(log pi_theta(x_{k-1} | x_k, s) - old_logp_k)
    L   = mean_b sum_k -min(r_k A_b, clip(r_k, 1 - eps, 1 + eps) A_b)

At the reference parameters every ``r_k`` is exactly 1 and ``grad L = -mean_b A_b sum_k grad log pi_k``.

``logp = "mean"`` (DPPO's choice) divides each step's log-probability by the latent size ``Ta * Da`` before the
ratio is formed: ``r_k`` becomes the geometric mean of the per-dimension ratios. With the sum (RL-100's formula,
the default) a ratio within ``1 +- eps`` lets the step's mean move by only about ``eps * sigma`` in norm over the
whole chunk; with the mean, about ``Ta * Da`` times more, so it goes with a smaller ``clip``.

Optional consistency distillation (``lambda_cd > 0``) is :func:`rl100.policy.consistency.distillation_loss`
of a student against the current policy; it only moves the student, so it is stepped by its own optimiser.

Shapes: ``B`` batch, ``K`` denoising steps, ``Ta, Da`` chunk; ``chain`` (B, K + 1, Ta, Da), ``old_logp`` (B, K),
``adv`` (B,), ``cond`` (B, C).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rl100.policy.diffusion import DiffusionPolicy
from rl100.rl.denoising_mdp import DenoisingConfig, chain_log_prob

LOGP_REDUCTIONS = ("sum", "mean")


@dataclass
class PPOConfig:
    clip: float = 0.2
    grad_clip: float = 0.5
    """actor grad-norm clip"""
    lr: float = 1e-5
    epochs: int = 4
    """passes over each collected batch of chains"""
    lambda_cd: float = 0.0
    """weight of the consistency-distillation term (0: no student)"""
    target_kl: float = 0.0
    """stop an epoch loop early when the approximate KL exceeds this (0: never)"""
    logp: str = "sum"
    """how a denoising step's log-probability covers the chunk's Ta * Da dims: sum (the Gaussian's log density) |
    mean (per dimension; the ratio is the geometric mean of the per-dimension ratios)"""

    def __post_init__(self) -> None:
        if not 0 < self.clip < 1:
            raise ValueError(f"clip must be in (0, 1), got {self.clip}")
        if self.lr <= 0 or self.epochs < 1:
            raise ValueError(f"lr must be positive and epochs >= 1, got {self.lr}, {self.epochs}")
        if self.lambda_cd < 0 or self.target_kl < 0 or self.grad_clip < 0:
            raise ValueError("lambda_cd, target_kl and grad_clip must be >= 0")
        if self.logp not in LOGP_REDUCTIONS:
            raise ValueError(f"logp must be one of {LOGP_REDUCTIONS}, got {self.logp!r}")


def ppo_loss(policy: DiffusionPolicy, cond: torch.Tensor, chain: torch.Tensor, old_logp: torch.Tensor,
             adv: torch.Tensor, clip: float = 0.2, denoising: DenoisingConfig | None = None, logp: str = "sum"
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped surrogate summed over the K steps, averaged over the batch; returns (loss, logs).

    ``old_logp`` holds summed log-probs (:func:`chain_log_prob`) whatever ``logp`` says; ``logp="mean"`` divides
    both by ``Ta * Da`` (see the module docstring).
    """
    if logp not in LOGP_REDUCTIONS:
        raise ValueError(f"logp must be one of {LOGP_REDUCTIONS}, got {logp!r}")
    scale = 1.0 / chain[0, 0].numel() if logp == "mean" else 1.0
    new_logp = chain_log_prob(policy, cond, chain, denoising)  # (B, K)
    log_ratio = scale * (new_logp - old_logp)
    ratio = log_ratio.exp()
    a = adv.reshape(-1, 1).to(ratio.dtype)
    surrogate = torch.minimum(ratio * a, ratio.clamp(1 - clip, 1 + clip) * a)  # (B, K)
    loss = -surrogate.sum(dim=1).mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()  # k3 estimator, per step
        clipfrac = ((ratio - 1).abs() > clip).float().mean()
    logs = {"ppo/loss": float(loss.detach()), "ppo/approx_kl": float(approx_kl), "ppo/clipfrac": float(clipfrac),
            "ppo/ratio_mean": float(ratio.detach().mean()), "ppo/logp": float(new_logp.detach().mean())}
    return loss, logs
