"""Online rollouts over the chunk-level MDP, chunk-level GAE, and a torch policy runner for evaluation.

One MDP step is one action chunk: the policy samples the whole denoising chain ``x_K -> ... -> x_0`` with the
stochastic sampler of :mod:`rl100.rl.denoising_mdp` (the chain is recorded for the PPO ratios), the executed part
``x_0[action_start : action_start + n]`` is un-normalised and stepped ``n = n_action_steps`` times (fewer when the
episode ends inside the chunk). The chunk's reward is the sum of the environment's (sparse success) rewards over
the executed steps; the discount per MDP step is ``gamma_env ** n`` (:func:`chunk_gae`). The observation history
(``n_obs`` steps, the first observation repeated at a reset, as :class:`rl100.runtime.PolicyRuntime` does) after
the last executed step is the next state.

:func:`collect` runs complete episodes (each environment reset with a given seed) in waves of ``len(envs)``
environments, one batched policy call per chunk. Shapes: ``B`` transitions (episode-major), ``E`` episodes,
``T`` the longest episode in chunks, ``K`` denoising steps, ``Ta, Da`` chunk, ``To`` history, ``n`` executed steps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rl100.policy.config import PolicyConfig
from rl100.policy.consistency import ConsistencyPolicy
from rl100.policy.diffusion import DiffusionPolicy
from rl100.rl.denoising_mdp import DenoisingConfig, executed_actions, sample_chain
from rl100.rl.gae import gae
from rl100.sim.obs import OBS_NAMES

_OBS_NAME_OF_KEY = {key: name for name, key in OBS_NAMES.items()}


def env_kwargs_for(config: PolicyConfig) -> dict[str, Any]:
    """``make_env`` keywords that produce the policy's observations (names, camera size, points per cloud)."""
    unknown = [k for k in config.obs_keys if k not in _OBS_NAME_OF_KEY]
    if unknown:
        raise ValueError(f"the simulator has no observation keys {unknown} (it has {sorted(_OBS_NAME_OF_KEY)})")
    kw: dict[str, Any] = {"obs": tuple(_OBS_NAME_OF_KEY[k] for k in config.obs_keys)}
    for spec in config.obs:
        if spec.kind == "rgb":
            kw["camera_size"] = tuple(spec.shape[:2])
        elif spec.kind == "points":
            kw["n_points"] = int(spec.shape[0])
    return kw


class ObsHistory:
    """The last ``n_obs`` observations of the policy's keys; a reset fills it with the first observation."""

    def __init__(self, keys: Sequence[str], n_obs: int, first: Mapping[str, Any]) -> None:
        self.keys = list(keys)
        self.steps: deque[dict[str, np.ndarray]] = deque(maxlen=n_obs)
        for _ in range(n_obs):
            self.push(first)

    def push(self, obs: Mapping[str, Any]) -> None:
        self.steps.append({k: np.asarray(obs[k]) for k in self.keys})

    def stacked(self) -> dict[str, np.ndarray]:
        """``{key: (To, *shape)}``."""
        return {k: np.stack([s[k] for s in self.steps]) for k in self.keys}


def stack_obs(items: Sequence[Mapping[str, np.ndarray]], device: torch.device | str) -> dict[str, torch.Tensor]:
    """A list of ``{key: (To, *shape)}`` -> ``{key: (len, To, *shape)}`` tensors on ``device``."""
    return {k: torch.as_tensor(np.stack([it[k] for it in items])).to(device) for k in items[0]}


@dataclass
class Rollout:
    """Chunk transitions of ``E`` complete episodes, episode-major (episode 0's steps first)."""

    obs: dict[str, torch.Tensor]
    """(B, To, *shape) state at each decision"""
    chain: torch.Tensor
    """(B, K + 1, Ta, Da) the recorded denoising chain (normalised)"""
    reward: torch.Tensor
    """(B,) environment reward summed over the executed part of the chunk"""
    terminal: torch.Tensor
    """(B,) bool: the episode terminated (no bootstrap) inside this chunk"""
    final_obs: dict[str, torch.Tensor]
    """(E, To, *shape) state after each episode's last chunk (bootstraps a truncated episode)"""
    lengths: list[int]
    """chunks per episode (sum = B)"""
    successes: list[bool]
    returns: list[float]
    env_steps: int

    def __len__(self) -> int:
        return int(self.reward.shape[0])


@torch.no_grad()
def collect(policy: DiffusionPolicy, envs: Sequence[Any], seeds: Sequence[int], denoising: DenoisingConfig,
            generator: torch.Generator | None = None) -> Rollout:
    """Run ``len(seeds)`` episodes (episode ``e`` reset with ``seeds[e]``) with the stochastic chain sampler."""
    cfg = policy.config
    device = next(policy.parameters()).device
    obs_l: list[dict[str, np.ndarray]] = []
    chains: list[torch.Tensor] = []
    rewards: list[float] = []
    terminals: list[bool] = []
    final_obs: list[dict[str, np.ndarray]] = []
    lengths: list[int] = []
    successes: list[bool] = []
    returns: list[float] = []
    env_steps = 0
    for w in range(0, len(seeds), len(envs)):
        wave = list(zip(envs, seeds[w : w + len(envs)], strict=False))
        hist = [ObsHistory(cfg.obs_keys, cfg.n_obs, env.reset(seed=int(seed))[0]) for env, seed in wave]
        ep: list[dict[str, list]] = [{"obs": [], "chain": [], "reward": [], "terminal": []} for _ in wave]
        success = [False] * len(wave)
        final: list[dict[str, np.ndarray]] = [{} for _ in wave]
        active = list(range(len(wave)))
        while active:
            states = [hist[i].stacked() for i in active]
            cond = policy.encode(stack_obs(states, device))
            x0, chain = sample_chain(policy, cond, denoising, generator=generator)  # (b, Ta, Da), (b, K+1, Ta, Da)
            acts = policy.normalizer.action.inverse(executed_actions(policy, x0)).cpu().numpy()  # (b, n, Da)
            still = []
            for j, i in enumerate(active):
                env, total, terminated, truncated = wave[i][0], 0.0, False, False
                for a in acts[j]:
                    obs, r, terminated, truncated, info = env.step(a)
                    hist[i].push(obs)
                    total += float(r)
                    env_steps += 1
                    success[i] = success[i] or bool(info.get("success", False))
                    if terminated or truncated:
                        break
                rec = ep[i]
                rec["obs"].append(states[j])
                rec["chain"].append(chain[j])
                rec["reward"].append(total)
                rec["terminal"].append(bool(terminated))
                if terminated or truncated:
                    final[i] = hist[i].stacked()
                else:
                    still.append(i)
            active = still
        final_obs += final
        for i, rec in enumerate(ep):
            obs_l += rec["obs"]
            chains += rec["chain"]
            rewards += rec["reward"]
            terminals += rec["terminal"]
            lengths.append(len(rec["reward"]))
            successes.append(success[i])
            returns.append(float(sum(rec["reward"])))
    return Rollout(obs=stack_obs(obs_l, "cpu"), chain=torch.stack(chains).cpu(),
                   reward=torch.tensor(rewards, dtype=torch.float32), terminal=torch.tensor(terminals),
                   final_obs=stack_obs(final_obs, "cpu"), lengths=lengths, successes=successes, returns=returns,
                   env_steps=env_steps)


def chunk_gae(reward: torch.Tensor, value: torch.Tensor, final_value: torch.Tensor, terminal: torch.Tensor,
              lengths: Sequence[int], gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over episode-major chunk transitions -> (advantages (B,), returns (B,)), via :func:`rl100.rl.gae.gae`.

    ``value`` (B,) = V(s_t); ``final_value`` (E,) = V(state after the episode's last chunk), used when that chunk
    did not terminate (truncation); ``gamma`` is the per-chunk discount. Episodes are padded to (T, E) time-major
    with finished, zero steps.
    """
    lens = torch.as_tensor(list(lengths), dtype=torch.long)
    if int(lens.sum()) != reward.shape[0] or final_value.shape[0] != lens.shape[0] or int(lens.min()) < 1:
        raise ValueError(f"lengths {list(lengths)} do not split {reward.shape[0]} transitions into "
                         f"{final_value.shape[0]} non-empty episodes")
    ends = torch.cumsum(lens, 0) - 1  # (E,) index of each episode's last transition
    next_value = torch.cat([value[1:], value[-1:]])
    next_value[ends] = final_value.to(value.dtype)
    done = torch.zeros_like(terminal, dtype=torch.bool)
    done[ends] = True
    mask = (torch.arange(int(lens.max()))[None, :] < lens[:, None])  # (E, T)

    def pad(x: torch.Tensor, fill: float) -> torch.Tensor:
        out = torch.full(mask.shape, fill, dtype=torch.float32)
        out[mask] = x.float()
        return out.T  # (T, E)

    adv, _ = gae(pad(reward, 0.0), pad(value, 0.0), pad(next_value, 0.0), pad(terminal, 1.0), pad(done, 1.0),
                 gamma, lam)
    adv = adv.T[mask]
    return adv, adv + value.float()


class TorchPolicyRunner:
    """:class:`rl100.runtime.PolicyRuntime`'s ``reset`` / ``act`` / ``latency_stats`` over an in-memory torch policy,
    so :func:`rl100.train.evaluate.evaluate` can score it. Receding horizon: plan a chunk, execute ``n`` steps.

    ``sampler``: ``ddim`` = the policy's own deterministic sampler (what gets exported; the one step of a
    consistency policy), ``mdp`` = the stochastic denoising-MDP sampler (diffusion only).
    """

    def __init__(self, policy: DiffusionPolicy | ConsistencyPolicy, sampler: str = "ddim",
                 denoising: DenoisingConfig | None = None, seed: int = 0) -> None:
        if sampler not in ("ddim", "mdp"):
            raise ValueError(f"sampler must be ddim or mdp, got {sampler!r}")
        if sampler == "mdp" and not isinstance(policy, DiffusionPolicy):
            raise ValueError("the mdp sampler needs a diffusion policy")
        self.policy = policy
        self.sampler = sampler
        self.denoising = denoising or DenoisingConfig()
        self.device = next(policy.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.reset()

    def reset(self) -> None:
        self.history: ObsHistory | None = None
        self.queue: deque[np.ndarray] = deque()

    @torch.no_grad()
    def act(self, obs: Mapping[str, Any]) -> np.ndarray:
        cfg = self.policy.config
        if self.history is None:
            self.history = ObsHistory(cfg.obs_keys, cfg.n_obs, obs)
        else:
            self.history.push(obs)
        if not self.queue:
            batch = stack_obs([self.history.stacked()], self.device)
            if self.sampler == "mdp":
                x0, _ = sample_chain(self.policy, self.policy.encode(batch), self.denoising, generator=self.generator)
                chunk = self.policy.normalizer.action.inverse(x0)
            else:
                chunk = self.policy.predict_action(batch, generator=self.generator)  # (1, Ta, Da)
            s = cfg.action_start
            self.queue.extend(chunk[0, s : s + cfg.n_action_steps].cpu().numpy())
        return self.queue.popleft()

    def latency_stats(self) -> dict[str, float]:
        return {}
