"""Exponential moving average of a model's weights (the one EMA implementation of rl100).

``decay`` warms up as ``min(max_decay, (1 + n) / (10 + n))`` after ``n`` updates, so early averages
are not dominated by the random initialisation. Buffers (e.g. normaliser statistics) are copied, not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, max_decay: float = 0.999) -> None:
        if not 0.0 <= max_decay < 1.0:
            raise ValueError(f"max_decay must be in [0, 1), got {max_decay}")
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.max_decay = max_decay
        self.num_updates = 0

    def decay(self) -> float:
        n = self.num_updates
        return min(self.max_decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.decay()
        for p_ema, p in zip(self.model.parameters(), model.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
        self.num_updates += 1

    def state(self) -> dict[str, object]:
        return {"num_updates": self.num_updates, "max_decay": self.max_decay}

    def load_state(self, state: dict[str, object]) -> None:
        self.num_updates = int(state["num_updates"])
        self.max_decay = float(state["max_decay"])
