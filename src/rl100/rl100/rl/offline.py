"""One offline improvement round of RL-100 on a dataset: IQL critics -> PPO over the denoising MDP -> OPE gate.

:func:`offline_round` reads top to bottom:

1. critics: double Q + V (expectile) with a Polyak target, on chunk transitions of the dataset;
2. (AM-Q horizon > 1) a transition-model ensemble on the same transitions;
3. PPO: per iteration, dataset states -> chains sampled by the current policy (its log-probs frozen as
   ``old_logp``) -> advantages ``A = Q - V`` of the sampled executed chunks (normalised) -> ``epochs`` clipped
   updates (actor grad-norm clip), plus consistency distillation of a student when ``lambda_cd > 0``; with
   ``bc_weight > 0`` each update adds ``bc_weight * L_BC``, the diffusion (epsilon-MSE) loss on dataset windows
   whose current step is an operator intervention (HIL-SERL: interventions are demonstrations);
4. gate: ``J`` of the old and the new policy on the same start states and noise, each run with the sampler the
   exported policy deploys (``ope_sampler``; or the stochastic MDP sampler PPO trains); the new one is kept only if
   ``J(new) - J(old) >= delta |J(old)|``.

Writes ``<out>/policy.*`` (the accepted policy, or the unchanged old one), ``candidate.*`` (with
``keep_candidate``: the updated policy the gate judged), ``student.*`` (when distilling, the student of the kept
policy's round), ``critics.safetensors``, ``metrics.csv``, ``result.json``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rl100.data import Dataset, SequenceSampler
from rl100.keys import ACTION, FLAG_INTERVENTION, FLAGS
from rl100.policy.checkpoint import load_policy, save_policy, save_tensors
from rl100.policy.config import PolicyConfig
from rl100.policy.consistency import ConsistencyPolicy, distillation_loss
from rl100.policy.diffusion import DiffusionPolicy
from rl100.rl.critics import CriticConfig, IQLCritics, iql_loss, make_target
from rl100.rl.denoising_mdp import DenoisingConfig, chain_log_prob, executed_actions, sample_chain
from rl100.rl.ope import TransitionEnsemble, amq_estimate, gate
from rl100.rl.ppo import PPOConfig, ppo_loss
from rl100.rl.transitions import TransitionSource
from rl100.train.common import optimizer_step, resolve_device
from rl100.train.logger import MetricLogger

OPE_SAMPLERS = ("deployed", "mdp")


@dataclass
class OfflineConfig:
    dataset: str = ""
    policy: str = ""
    """diffusion policy JSON to improve (from train-il or a previous round)"""
    out: str = "runs/offline"
    critic: CriticConfig = field(default_factory=CriticConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    denoising: DenoisingConfig = field(default_factory=DenoisingConfig)
    critic_steps: int = 2000
    model_steps: int = 1000
    model_members: int = 5
    ppo_iters: int = 100
    """PPO iterations (each: a fresh batch of states and sampled chains, then ``ppo.epochs`` updates)"""
    batch_size: int = 256
    amq_horizon: int = 1
    """AM-Q rollout length in chunks (1: no transition model)"""
    eval_states: int = 512
    gate_delta: float = 0.05
    ope_sampler: str = "deployed"
    """which policy the gate scores: deployed (the sampler the exported DDIM policy runs: the policy's own K,
    eta and step noise; with the default eta 1 and no step noise, the MDP's mean chain) | mdp (the stochastic
    denoising MDP that PPO trains, sigma clipped)"""
    advantage_scale: float = 1.0
    """multiplies the normalised advantages (-1 gives a deliberately harmful update, for testing the gate)"""
    bc_weight: float = 0.0
    """weight of the behaviour-cloning term on intervention windows added to each PPO update (0: off)"""
    keep_candidate: bool = False
    """also write the updated policy the gate judged to ``<out>/candidate.*``, accepted or not (to evaluate a
    rejected update: the gate ablation)"""
    seed: int = 0
    device: str = "auto"
    log_every: int = 10

    def __post_init__(self) -> None:
        for name, cls in (("critic", CriticConfig), ("ppo", PPOConfig), ("denoising", DenoisingConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, cls(**value))
        if min(self.critic_steps, self.ppo_iters, self.batch_size, self.eval_states, self.log_every) < 1:
            raise ValueError("critic_steps, ppo_iters, batch_size, eval_states, log_every must be >= 1")
        if self.model_steps < 0 or self.model_members < 1 or self.amq_horizon < 1 or self.gate_delta < 0:
            raise ValueError("need model_steps >= 0, model_members >= 1, amq_horizon >= 1, gate_delta >= 0")
        if self.bc_weight < 0:
            raise ValueError(f"bc_weight must be >= 0, got {self.bc_weight}")
        if self.ope_sampler not in OPE_SAMPLERS:
            raise ValueError(f"ope_sampler must be one of {OPE_SAMPLERS}, got {self.ope_sampler!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto|cpu|cuda, got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class OfflineResult:
    accepted: bool
    reason: str
    j_old: float
    j_new: float
    policy_path: str


def train_critics(critics: IQLCritics, source: TransitionSource, steps: int, logger: MetricLogger | None = None,
                  log_every: int = 50, step_offset: int = 0) -> dict[str, float]:
    """IQL updates on ``source`` batches ``step_offset ..``; returns the last logs."""
    target = make_target(critics)
    opt = torch.optim.Adam(critics.parameters(), lr=critics.cfg.lr)
    logs: dict[str, float] = {}
    for i in range(steps):
        loss, logs = iql_loss(critics, target.model, source.batch(step_offset + i))
        optimizer_step(loss, critics.parameters(), opt, critics.cfg.grad_clip, ema=target, model=critics)
        if logger is not None and ((i + 1) % log_every == 0 or i + 1 == steps):
            logger.log(i + 1, logs)
    return logs


class FlaggedWindows:
    """Training windows ``{obs key: (B, To, ...), action: (B, Ta, Da)}`` whose *current* step has a bit of ``flag``.

    With the sampler's default padding window ``first[e] + t`` has current step ``t`` of episode ``e``, so the
    flagged windows are read off the per-step flags. ``batch(step)`` is a pure function of (seed, step).
    """

    def __init__(self, dataset: Dataset, config: PolicyConfig, batch_size: int, seed: int,
                 flag: int = FLAG_INTERVENTION, device: torch.device | str = "cpu") -> None:
        self.sampler = SequenceSampler(dataset, keys=config.obs_keys, n_obs=config.n_obs, horizon=config.horizon)
        if len(self.sampler) != dataset.num_steps:
            raise ValueError("FlaggedWindows needs the sampler's default padding (one window per step)")
        starts = np.cumsum(dataset.lengths) - dataset.lengths  # (N,)
        flagged = [starts[e] + np.flatnonzero(np.asarray(dataset.episode(e)[FLAGS]) & flag)
                   for e in range(len(dataset))]
        self.indices = np.concatenate(flagged) if flagged else np.zeros(0, np.int64)  # (W_flagged,)
        self.keys = [*config.obs_keys, ACTION]
        self.batch_size, self.seed, self.device = batch_size, seed, torch.device(device)

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        pick = np.random.default_rng([self.seed, 4 * 10**6 + step]).integers(0, len(self.indices), self.batch_size)
        arrays = self.sampler.batch(self.indices[pick], keys=self.keys)
        return {k: torch.as_tensor(arrays[k]).to(self.device) for k in self.keys}


def chunk_policy(policy: DiffusionPolicy, denoising: DenoisingConfig, seed: int, sampler: str = "mdp"):
    """obs -> normalised executed chunk; noise from a generator seeded by ``seed`` (common random numbers).

    ``sampler``: mdp (:func:`sample_chain` under ``denoising``) | deployed (``sample_normalized`` with the policy's
    own K, eta and step noise: what the exported DDIM graph computes from the same x_T).
    """
    if sampler not in OPE_SAMPLERS:
        raise ValueError(f"sampler must be one of {OPE_SAMPLERS}, got {sampler!r}")
    gen = torch.Generator(device=next(policy.parameters()).device).manual_seed(seed)  # where the noise is drawn

    def act(obs):
        with torch.no_grad():
            cond = policy.encode(obs)
            if sampler == "mdp":
                x0, _ = sample_chain(policy, cond, denoising, generator=gen)
            else:
                c = policy.config
                shape = (cond.shape[0], c.horizon, c.action_dim)
                x_t = torch.randn(shape, generator=gen, device=cond.device)
                z = (torch.randn((shape[0], c.num_inference_steps, *shape[1:]), generator=gen, device=cond.device)
                     if c.stochastic else None)  # a policy deployed with step noise: drawn here too (common numbers)
                x0 = policy.sample_normalized(cond, x_t, step_noise=z)
        return executed_actions(policy, x0)

    return act


def offline_round(cfg: OfflineConfig, policy: DiffusionPolicy | None = None) -> OfflineResult:
    """Run one round (see the module docstring). ``policy``: use this model instead of loading ``cfg.policy``."""
    if not cfg.dataset:
        raise ValueError("no dataset given")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    if policy is None:
        policy = load_policy(cfg.policy)
    torch.manual_seed(cfg.seed)  # after loading: the round's randomness does not depend on how the policy came
    if not isinstance(policy, DiffusionPolicy):
        raise ValueError(f"offline RL needs a diffusion policy, got {policy.kind}")
    policy = copy.deepcopy(policy).to(device)
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    logger = MetricLogger(out, tensorboard=False)
    source = TransitionSource(Dataset(cfg.dataset), policy.config, cfg.batch_size, cfg.seed, cfg.critic.gamma, device)

    critics = IQLCritics(policy.config, cfg.critic).to(device)
    critics.normalizer.load_state_dict(policy.normalizer.state_dict())
    train_critics(critics, source, cfg.critic_steps, logger, cfg.log_every)
    critics.eval().requires_grad_(False)
    save_tensors(out / "critics.safetensors", critics.state_dict(), {"format": "rl100.iql_critics"})
    step = cfg.critic_steps

    model = None
    if cfg.amq_horizon > 1:
        model = TransitionEnsemble(policy.config, cfg.model_members).to(device)
        opt_m = torch.optim.Adam(model.parameters(), lr=1e-3)
        for i in range(cfg.model_steps):
            loss = model.loss(source.batch(10**6 + i), critics)
            optimizer_step(loss, model.parameters(), opt_m, 10.0)
        model.eval().requires_grad_(False)

    student = ConsistencyPolicy.from_teacher(policy).to(device) if cfg.ppo.lambda_cd > 0 else None
    opt_s = torch.optim.AdamW(student.parameters(), lr=cfg.ppo.lr) if student is not None else None
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.ppo.lr, weight_decay=0.0)
    dcfg = cfg.denoising
    bc = None
    if cfg.bc_weight > 0:
        bc = FlaggedWindows(source.sampler.dataset, policy.config, cfg.batch_size, cfg.seed, device=device)
        bc = bc if len(bc) else None  # no intervention in the data: plain PPO
    for it in range(cfg.ppo_iters):
        batch = source.batch(2 * 10**6 + it)
        with torch.no_grad():
            cond = policy.encode(batch)
            x0, chain = sample_chain(policy, cond, dcfg)
            old_logp = chain_log_prob(policy, cond, chain, dcfg)
            adv = cfg.advantage_scale * critics.advantages(batch, executed_actions(policy, x0))
        logs: dict[str, float] = {}
        bc_batch = bc.batch(it) if bc is not None else None
        for _ in range(cfg.ppo.epochs):
            loss, logs = ppo_loss(policy, policy.encode(batch), chain, old_logp, adv, cfg.ppo.clip, dcfg,
                                  cfg.ppo.logp)
            if bc_batch is not None:
                loss_bc = policy.compute_loss(bc_batch)
                loss = loss + cfg.bc_weight * loss_bc
                logs["bc/loss"] = float(loss_bc.detach())
            logs["ppo/grad_norm"] = optimizer_step(loss, policy.parameters(), opt, cfg.ppo.grad_clip)
            if cfg.ppo.target_kl > 0 and logs["ppo/approx_kl"] > cfg.ppo.target_kl:
                break
        if student is not None:
            loss_cd, cd_logs = distillation_loss(student, policy, batch)
            optimizer_step(cfg.ppo.lambda_cd * loss_cd, student.parameters(), opt_s, 1.0)
            logs |= cd_logs
        if (it + 1) % cfg.log_every == 0 or it + 1 == cfg.ppo_iters:
            logger.log(step + it + 1, logs)
    policy.eval()

    starts = source.batch(3 * 10**6)
    starts = {k: starts[k][: cfg.eval_states] for k in policy.config.obs_keys}
    kw = {"model": model, "horizon": cfg.amq_horizon, "gamma": cfg.critic.gamma}
    j_old = amq_estimate(chunk_policy(reference, dcfg, cfg.seed, cfg.ope_sampler), critics, starts, **kw,
                         generator=torch.Generator().manual_seed(cfg.seed))
    j_new = amq_estimate(chunk_policy(policy, dcfg, cfg.seed, cfg.ope_sampler), critics, starts, **kw,
                         generator=torch.Generator().manual_seed(cfg.seed))
    accepted, reason = gate(j_new, j_old, cfg.gate_delta)
    logger.log(step + cfg.ppo_iters + 1, {"ope/j_old": j_old, "ope/j_new": j_new, "ope/accepted": float(accepted)})
    logger.close()
    kept = policy if accepted else reference
    meta = {"offline_round": cfg.to_dict(), "accepted": accepted, "j_old": j_old, "j_new": j_new,
            "bc_windows": len(bc) if bc is not None else 0}
    path = save_policy(out / "policy", copy.deepcopy(kept).cpu().eval(), meta)
    if cfg.keep_candidate:
        save_policy(out / "candidate", copy.deepcopy(policy).cpu().eval(), meta)
    if student is not None and accepted:
        save_policy(out / "student", student.cpu().eval(), meta)
    result = OfflineResult(accepted, reason, j_old, j_new, str(path))
    (out / "result.json").write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n")
    return result
