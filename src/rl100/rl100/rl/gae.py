"""Generalised advantage estimation (the one implementation of rl100) and the clipped value loss.

Time-major arrays ``(T, N)`` (T steps of N parallel envs; one step = one executed chunk for chunked policies,
so ``gamma`` should be ``gamma_env ** n_action_steps``)::

    delta_t = r_t + gamma (1 - terminal_t) V(s_{t+1}) - V(s_t)
    A_t     = delta_t + gamma lambda (1 - done_t) A_{t+1}

``terminal_t``: the MDP ended after step t (no bootstrap); ``done_t``: the episode ended after step t for any
reason (terminal or truncated: the trace is cut). ``next_values[t] = V(s_{t+1})``, for a truncated step the value
of its final observation.
"""

from __future__ import annotations

import torch


def gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor, terminals: torch.Tensor,
        dones: torch.Tensor, gamma: float, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (advantages (T, N), returns = advantages + values (T, N)). Inputs (T, N); flags bool or {0, 1}."""
    if not (0 < gamma <= 1 and 0 <= lam <= 1):
        raise ValueError(f"need gamma in (0, 1], lambda in [0, 1]; got {gamma}, {lam}")
    if not rewards.shape == values.shape == next_values.shape == terminals.shape == dones.shape:
        raise ValueError("rewards, values, next_values, terminals, dones must have the same (T, N) shape")
    not_term = 1.0 - terminals.float()
    not_done = 1.0 - dones.float()
    deltas = rewards + gamma * not_term * next_values - values
    adv = torch.zeros_like(values)
    running = torch.zeros_like(values[0])
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * lam * not_done[t] * running
        adv[t] = running
    return adv, adv + values


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       clip: float) -> torch.Tensor:
    """PPO value clipping: ``0.5 * mean(max((v - R)^2, (v_old + clip(v - v_old, -c, c) - R)^2))``; clip <= 0: plain."""
    unclipped = (values - returns).square()
    if clip <= 0:
        return 0.5 * unclipped.mean()
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * torch.maximum(unclipped, (clipped - returns).square()).mean()
