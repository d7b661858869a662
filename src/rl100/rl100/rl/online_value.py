"""The online state-value function ``V(s)`` and its strict warm start from the offline IQL critics.

:class:`ValueFunction` has the ``normalizer`` / ``encoder`` / ``v`` submodules of
:class:`~rl100.rl.critics.IQLCritics` under the same names, so the offline critics' encoder and V head load into it
key for key (the Q heads are not used online). Shapes: ``B`` batch, ``To`` history, ``F`` encoder features.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from rl100.policy.checkpoint import CheckpointError, load_state_strict
from rl100.policy.config import PolicyConfig
from rl100.policy.encoders import ObsEncoder
from rl100.policy.normalizer import Normalizer
from rl100.rl.critics import mlp

CRITICS_FORMAT = "rl100.iql_critics"
"""``format`` metadata of the critics file written by :func:`rl100.rl.offline.offline_round`"""
VALUE_FORMAT = "rl100.online_value"
"""``format`` metadata of ``value.safetensors`` written by ``rl100 online`` (all tensors are V's)"""
VALUE_PREFIXES = ("normalizer.", "encoder.", "v.")
"""the IQL critics' tensors that make up V (the rest, ``q1.*`` / ``q2.*``, stay offline)"""


class ValueFunction(nn.Module):
    """``V(s)``: raw observations ``{key: (B, To, *shape)}`` -> (B,)."""

    def __init__(self, policy_config: PolicyConfig, hidden: int = 256, layers: int = 2) -> None:
        super().__init__()
        self.config = policy_config
        self.normalizer = Normalizer(policy_config)
        self.encoder = ObsEncoder(policy_config)
        self.v = mlp(self.encoder.out_dim, hidden, layers)

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        to = self.config.n_obs
        feat = self.encoder(self.normalizer.normalize_obs({k: obs[k][:, -to:] for k in self.config.obs_keys}))
        return self.v(feat).squeeze(-1)


def load_value_from_critics(value: ValueFunction, path: str | os.PathLike) -> None:
    """Load ``value`` strictly from an offline critics checkpoint (its encoder / normaliser / V tensors) or from a
    previous online run's ``value.safetensors`` (all of it): every tensor of ``value`` must be there with the same
    shape and no other V tensor may be, else :class:`CheckpointError` naming the keys."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no critics checkpoint there")
    with safe_open(str(path), framework="pt") as f:
        fmt = (f.metadata() or {}).get("format")
    if fmt not in (CRITICS_FORMAT, VALUE_FORMAT):
        raise CheckpointError(f"{path}: not an IQL critics checkpoint (format={fmt!r}, expected {CRITICS_FORMAT!r} "
                              f"or {VALUE_FORMAT!r}; rl100 offline-round writes <out>/critics.safetensors)")
    tensors = load_file(str(path))
    subset = tensors if fmt == VALUE_FORMAT else {k: v for k, v in tensors.items() if k.startswith(VALUE_PREFIXES)}
    try:
        load_state_strict(value, subset, what=f"{path} (value function)")
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}. The online V must have the critics' architecture: set value.hidden / "
                              "value.layers to the offline round's critic.hidden / critic.layers, and fine-tune the "
                              "policy whose observations the critics were trained on") from exc
