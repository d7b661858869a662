"""Learning-rate schedule: linear warmup then cosine decay (the one LR scheduler of rl100).

``lr(step) = base * step / warmup`` for ``step < warmup``, then ``base * (min_ratio + (1 - min_ratio) *
0.5 * (1 + cos(pi * p)))`` with ``p = (step - warmup) / (total - warmup)`` clipped to [0, 1].
Its whole state is the step counter, so exact resume is trivial.
"""

from __future__ import annotations

import math

import torch


class CosineWarmup:
    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                 min_ratio: float = 0.0) -> None:
        if total_steps < 1 or not 0 <= warmup_steps <= total_steps or not 0 <= min_ratio <= 1:
            raise ValueError(f"bad schedule: total={total_steps} warmup={warmup_steps} min_ratio={min_ratio}")
        self.optimizer = optimizer
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.min_ratio = min_ratio
        self.base_lrs = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
        for g, lr in zip(optimizer.param_groups, self.base_lrs, strict=True):
            g["initial_lr"] = lr
        self.step_count = 0
        self._apply()

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        span = max(self.total_steps - self.warmup_steps, 1)
        p = min(max((step - self.warmup_steps) / span, 0.0), 1.0)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * p))

    def _apply(self) -> None:
        f = self.factor(self.step_count)
        for g, lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            g["lr"] = lr * f

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, object]:
        return {"step_count": self.step_count, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "min_ratio": self.min_ratio, "base_lrs": self.base_lrs}

    def retarget(self, base_lrs: list[float], total_steps: int) -> None:
        """Keep the steps done, continue under new peak rates and a new length (a resumed run whose config
        changed them); the rate jumps to the new schedule's value at the current step."""
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"{len(base_lrs)} rates for {len(self.optimizer.param_groups)} parameter groups")
        if total_steps < 1 or not self.warmup_steps <= total_steps:
            raise ValueError(f"bad schedule: total={total_steps} warmup={self.warmup_steps}")
        self.base_lrs = [float(x) for x in base_lrs]
        self.total_steps = int(total_steps)
        for g, lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            g["initial_lr"] = lr
        self._apply()

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.step_count = int(state["step_count"])
        self.total_steps = int(state["total_steps"])
        self.warmup_steps = int(state["warmup_steps"])
        self.min_ratio = float(state["min_ratio"])
        self.base_lrs = [float(x) for x in state["base_lrs"]]
        self._apply()
