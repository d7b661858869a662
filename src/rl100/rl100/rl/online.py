"""``rl100 online``: on-policy PPO + GAE over the denoising MDP in simulation, with optional consistency distillation.

:func:`online` reads top to bottom; each iteration:

1. collect ``episodes_per_iter`` complete episodes with the stochastic chain sampler (:mod:`.online_rollout`;
   one MDP step = one executed chunk, reward summed over the chunk, discount ``gamma ** n_action_steps``);
2. ``V`` of every state (and of the state after each truncated episode), GAE (:func:`.online_rollout.chunk_gae`
   over :func:`rl100.rl.gae.gae`), advantages normalised over the batch;
3. ``ppo.epochs`` shuffled passes in minibatches: the clipped PPO loss summed over the K denoising steps with the
   shared advantage (:func:`rl100.rl.ppo.ppo_loss`, actor grad-norm clip), the clipped value loss
   (:func:`rl100.rl.gae.clipped_value_loss`), and with ``ppo.lambda_cd > 0`` one step of
   ``lambda_cd * L_CD`` on the one-step student (:func:`rl100.policy.consistency.distillation_loss` against the
   current policy; it only moves the student, so L_RL + lambda_cd L_CD is one step of each optimiser).
   ``old_logp`` is computed before the first update over exactly the first epoch's minibatches, so the ratio
   of the first minibatch is exactly 1;
4. evaluation over the same ``eval_episodes`` seeds each time (:func:`rl100.train.evaluate.evaluate`), logging,
   checkpoints.

``V`` is warm-started from the offline IQL critics (``critics``, strict) or starts fresh with the policy's
normaliser. Run directory: ``policy.*`` (latest), ``policy_best.*`` (best evaluation), ``student.*`` (EMA weights
when EMA is on), ``value.safetensors``, ``state_{policy,value,student}.*`` (exact resume), ``metrics.csv``,
``tb/``, ``config.yaml``, ``result.json`` (success per iteration).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from rl100.policy.checkpoint import load_policy, save_policy, save_tensors
from rl100.policy.consistency import ConsistencyPolicy, distillation_loss
from rl100.policy.diffusion import DiffusionPolicy
from rl100.policy.ema import EMA
from rl100.rl.critics import normalize_advantages
from rl100.rl.denoising_mdp import chain_log_prob
from rl100.rl.gae import clipped_value_loss
from rl100.rl.online_config import OnlineConfig
from rl100.rl.online_rollout import Rollout, TorchPolicyRunner, chunk_gae, collect, env_kwargs_for
from rl100.rl.online_value import VALUE_FORMAT, ValueFunction, load_value_from_critics
from rl100.rl.ppo import ppo_loss
from rl100.train.common import optimizer_step, resolve_device
from rl100.train.evaluate import evaluate
from rl100.train.logger import MetricLogger
from rl100.train.lr import CosineWarmup
from rl100.train.state import load_train_state, save_train_state

STATES = ("policy", "value", "student")
"""resume files ``state_<name>.*`` (one :mod:`rl100.train.state` file per trained module)"""


@dataclass
class Batch:
    """One iteration's training data on the device. ``B`` transitions; obs (B, To, *shape), chain (B, K+1, Ta, Da)."""

    obs: dict[str, torch.Tensor]
    chain: torch.Tensor
    adv: torch.Tensor
    """(B,) normalised (if configured) GAE advantages"""
    returns: torch.Tensor
    """(B,) GAE returns = advantages + old values (the value target)"""
    old_values: torch.Tensor
    """(B,) V at collection time (value clipping)"""

    def take(self, idx: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {k: v[idx] for k, v in self.obs.items()}, self.chain[idx]


@dataclass
class Learner:
    """The trained modules with their optimisers and LR schedules (one of each per module)."""

    cfg: OnlineConfig
    policy: DiffusionPolicy
    value: ValueFunction
    student: ConsistencyPolicy | None = None
    ema: EMA | None = None
    opts: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    scheds: dict[str, CosineWarmup] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.opts["policy"] = torch.optim.AdamW(self.policy.parameters(), lr=cfg.ppo.lr, weight_decay=0.0)
        self.opts["value"] = torch.optim.Adam(self.value.parameters(), lr=cfg.value.lr)
        if self.student is not None:
            self.opts["student"] = torch.optim.AdamW(self.student.parameters(), lr=cfg.student_lr)
        self.scheds = {k: CosineWarmup(o, cfg.iterations, 0, cfg.min_lr_ratio) for k, o in self.opts.items()}

    def modules(self) -> dict[str, Any]:
        return {"policy": self.policy, "value": self.value, "student": self.student}

    @torch.no_grad()
    def values(self, obs: dict[str, torch.Tensor], device: torch.device, chunk: int = 1024) -> torch.Tensor:
        """V of (B, To, ...) CPU observations, in chunks on ``device`` -> (B,) CPU."""
        n = next(iter(obs.values())).shape[0]
        return torch.cat([self.value({k: v[i : i + chunk].to(device) for k, v in obs.items()}).cpu()
                          for i in range(0, n, chunk)])

    def update(self, batch: Batch, generator: torch.Generator, train_actor: bool = True) -> dict[str, float]:
        """PPO epochs over ``batch`` (see the module docstring, step 3); returns averaged logs + ``*_ref`` logs of
        the first minibatch (taken at the reference parameters). ``generator`` (CPU) shuffles the minibatches."""
        cfg, policy, dcfg = self.cfg, self.policy, self.cfg.denoising
        n = batch.chain.shape[0]
        mb = min(cfg.minibatch_size, n)
        device = batch.chain.device
        perms = [torch.randperm(n, generator=generator).to(device) for _ in range(cfg.ppo.epochs)]
        old_logp = torch.empty(n, batch.chain.shape[1] - 1, device=device)  # (B, K)
        with torch.no_grad():
            for idx in perms[0].split(mb):
                obs, chain = batch.take(idx)
                old_logp[idx] = chain_log_prob(policy, policy.encode(obs), chain, dcfg)
        sums: dict[str, float] = {}
        count, logs_ref = 0, {}
        for perm in perms:
            for idx in perm.split(mb):
                obs, chain = batch.take(idx)
                logs: dict[str, float] = {}
                if train_actor:
                    loss, logs = ppo_loss(policy, policy.encode(obs), chain, old_logp[idx], batch.adv[idx],
                                          cfg.ppo.clip, dcfg, cfg.ppo.logp)
                    logs["ppo/grad_norm"] = optimizer_step(loss, policy.parameters(), self.opts["policy"],
                                                           cfg.ppo.grad_clip)
                v_loss = clipped_value_loss(self.value(obs), batch.old_values[idx], batch.returns[idx], cfg.value.clip)
                logs["value/loss"] = float(v_loss.detach())
                logs["value/grad_norm"] = optimizer_step(v_loss, self.value.parameters(), self.opts["value"],
                                                         cfg.value.grad_clip)
                if self.student is not None:
                    cd, cd_logs = distillation_loss(self.student, policy, obs, traj_weight=cfg.cd_traj_weight)
                    optimizer_step(cfg.ppo.lambda_cd * cd, self.student.parameters(), self.opts["student"], 1.0,
                                   ema=self.ema, model=self.student)
                    logs |= cd_logs
                if count == 0:
                    logs_ref = {f"{k}_ref": v for k, v in logs.items() if k.startswith("ppo/")}
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
            kl = sums.get("ppo/approx_kl", 0.0) / count
            if train_actor and cfg.ppo.target_kl > 0 and kl > cfg.ppo.target_kl:
                break
        return {k: v / count for k, v in sums.items()} | logs_ref | {"ppo/minibatch_steps": float(count)}

    def step_schedules(self) -> None:
        for s in self.scheds.values():
            s.step()

    def save_state(self, out: Path, iteration: int, extra: dict[str, Any]) -> None:
        for name, module in self.modules().items():
            if module is not None:
                save_train_state(out / f"state_{name}", step=iteration, model=module,
                                 ema=self.ema if name == "student" else None, optimizer=self.opts[name],
                                 scheduler=self.scheds[name], config=self.cfg.to_dict(), extra=extra)

    def load_state(self, out: Path) -> tuple[int, dict[str, Any]]:
        """Restore every module from ``out/state_*``; returns (completed iterations, extra metadata).

        The learning rates and the schedule's length are this config's, not the saved ones: a run resumed with
        ``ppo.lr`` / ``value.lr`` / ``student_lr`` or ``iterations`` changed continues under the new values
        (logged), from the step it had reached."""
        steps, extra = set(), {}
        for name, module in self.modules().items():
            if module is not None:
                sched = self.scheds[name]
                wanted = list(sched.base_lrs)  # this config's (set when the optimiser was made)
                meta = load_train_state(out / f"state_{name}", model=module,
                                        ema=self.ema if name == "student" else None, optimizer=self.opts[name],
                                        scheduler=sched)
                if sched.base_lrs != wanted or sched.total_steps != self.cfg.iterations:
                    print(f"resume {name}: lr {sched.base_lrs} -> {wanted}, schedule {sched.total_steps} -> "
                          f"{self.cfg.iterations} iterations (from the config)", flush=True)
                    sched.retarget(wanted, self.cfg.iterations)
                steps.add(int(meta["step"]))
                extra = meta["extra"]
        if len(steps) != 1:
            raise ValueError(f"{out}: resume files are from different iterations {sorted(steps)}")
        return steps.pop(), extra


def make_learner(cfg: OnlineConfig, policy: DiffusionPolicy, device: torch.device) -> Learner:
    """Policy copy on ``device``, V (warm-started from ``cfg.critics`` when given), student + EMA when distilling."""
    value = ValueFunction(policy.config, cfg.value.hidden, cfg.value.layers)
    if cfg.critics:
        load_value_from_critics(value, cfg.critics)
    else:
        value.normalizer.load_state_dict(policy.normalizer.state_dict())
    student, ema = None, None
    if cfg.distill:
        if cfg.student:
            student = load_policy(cfg.student)
            if not isinstance(student, ConsistencyPolicy):
                raise ValueError(f"{cfg.student}: the student must be a consistency policy, got {student.kind}")
            if student.config.to_dict() | {"num_inference_steps": 0} != policy.config.to_dict() | {
                    "num_inference_steps": 0}:
                raise ValueError(f"{cfg.student}: the student's architecture differs from the policy's")
        else:
            student = ConsistencyPolicy.from_teacher(policy)
        student = student.to(device).train()
        ema = EMA(student, cfg.student_ema_decay) if cfg.student_ema_decay > 0 else None
    return Learner(cfg, copy.deepcopy(policy).to(device), value.to(device), student, ema)


def make_envs(cfg: OnlineConfig, policy: DiffusionPolicy, count: int, seed: int, disturbed: bool = True
              ) -> list[Any]:
    """``count`` task environments with the policy's observations; ``disturbed``: under ``cfg.disturbances``."""
    from rl100 import sim
    from rl100.sim.disturbances import cycle

    kw = env_kwargs_for(policy.config) | cfg.task_options
    specs = cfg.disturbances if disturbed else []
    return [cycle(sim.make_env(cfg.task, seed=seed + i, **kw), specs) for i in range(count)]


def rollout_batch(learner: Learner, rollout: Rollout, device: torch.device) -> tuple[Batch, dict[str, float]]:
    """Values, chunk-level GAE and (normalised) advantages of a rollout -> (device batch, logs)."""
    cfg = learner.cfg
    values = learner.values(rollout.obs, device)  # (B,)
    final_values = learner.values(rollout.final_obs, device)  # (E,)
    gamma = cfg.gamma ** learner.policy.config.n_action_steps
    adv, ret = chunk_gae(rollout.reward, values, final_values, rollout.terminal, rollout.lengths, gamma,
                         cfg.gae_lambda)
    var_ret = float(ret.var()) if len(ret) > 1 else 0.0
    logs = {"rollout/success_rate": float(np.mean(rollout.successes)),
            "rollout/return": float(np.mean(rollout.returns)),
            "rollout/chunks": float(np.mean(rollout.lengths)), "rollout/transitions": float(len(rollout)),
            "value/mean": float(values.mean()), "value/advantage_std": float(adv.std()) if len(adv) > 1 else 0.0,
            "value/explained_variance": 1.0 - float((ret - values).var()) / var_ret if var_ret > 0 else 0.0}
    if cfg.normalize_advantages:
        adv = normalize_advantages(adv)
    batch = Batch({k: v.to(device) for k, v in rollout.obs.items()}, rollout.chain.to(device), adv.to(device),
                  ret.to(device), values.to(device))
    return batch, logs


def run_eval(cfg: OnlineConfig, learner: Learner, env: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    targets = [("eval", learner.policy, cfg.eval_sampler)]
    if learner.student is not None and cfg.eval_student:
        targets.append(("eval_student", learner.ema.model if learner.ema is not None else learner.student, "ddim"))
    for prefix, model, sampler in targets:
        model.eval()
        res = evaluate(TorchPolicyRunner(model, sampler, cfg.denoising, seed=cfg.eval_seed), env, cfg.eval_episodes,
                       cfg.eval_seed)
        out |= {f"{prefix}/success_rate": res["success_rate"], f"{prefix}/return": res["mean_return"],
                f"{prefix}/length": res["mean_length"]}
    return out


@dataclass
class OnlineResult:
    policy_path: str
    iterations: int
    success: list[float]
    """evaluation success rate per evaluated iteration (the deployed policy)"""
    rollout_success: list[float]
    """success rate of the stochastic training rollouts per iteration"""
    env_steps: int = 0
    """environment steps of the training rollouts (evaluation not counted)"""


def online(cfg: OnlineConfig, resume: bool = False, command: str = "", stop_after: int | None = None,
           policy: DiffusionPolicy | None = None) -> OnlineResult | None:
    """Train (see the module docstring). ``policy``: use this model instead of loading ``cfg.policy``;
    ``stop_after``: leave after that many completed iterations (a resume point is saved; returns None)."""
    if not cfg.task:
        raise ValueError("no task given (task / --task)")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    device = resolve_device(cfg.device)
    if policy is None:
        if not cfg.policy:
            raise ValueError("no policy given (policy / --policy)")
        policy = load_policy(cfg.policy)
    if not isinstance(policy, DiffusionPolicy):
        raise ValueError(f"online RL needs a diffusion policy, got {policy.kind}")
    torch.manual_seed(cfg.seed)
    learner = make_learner(cfg, policy, device)
    envs = make_envs(cfg, policy, cfg.n_envs, cfg.seed)
    eval_env = make_envs(cfg, policy, 1, cfg.eval_seed, disturbed=False)[0] if cfg.eval_episodes > 0 else None
    logger = MetricLogger(out)
    start, best, env_steps = 0, -1.0, 0
    if resume and (out / "state_policy.json").exists():
        start, extra = learner.load_state(out)
        best, env_steps = float(extra["best_success"]), int(extra["env_steps"])
    end = cfg.iterations if stop_after is None else min(cfg.iterations, stop_after)
    meta = {"command": command, "policy": str(cfg.policy), "task": cfg.task, "critics": cfg.critics}
    try:
        for it in range(start, end):
            t0 = time.perf_counter()
            gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + it)  # sampler noise
            shuffle = torch.Generator().manual_seed(cfg.seed * 1_000_003 + it)  # minibatches (randperm is on CPU)
            seeds = np.random.default_rng([cfg.seed, it]).integers(0, 2**31 - 1, size=cfg.episodes_per_iter)
            learner.policy.eval()
            rollout = collect(learner.policy, envs, seeds.tolist(), cfg.denoising, generator=gen)
            env_steps += rollout.env_steps
            t1 = time.perf_counter()
            batch, logs = rollout_batch(learner, rollout, device)
            learner.policy.train()
            logs |= learner.update(batch, shuffle, train_actor=it >= cfg.value.warmup_iters)
            learner.step_schedules()
            t2 = time.perf_counter()
            last = it + 1 == cfg.iterations
            if eval_env is not None and ((it + 1) % cfg.eval_every == 0 or last):
                logs |= run_eval(cfg, learner, eval_env)
            logs |= {"charts/env_steps": float(env_steps), "charts/rollout_s": t1 - t0, "charts/update_s": t2 - t1,
                     "charts/SPS": rollout.env_steps / max(t1 - t0, 1e-9),
                     "charts/lr": learner.scheds["policy"].get_last_lr()[0]}
            logger.log(it + 1, logs)
            step_meta = meta | {"iteration": it + 1, "env_steps": env_steps}
            success = logs.get("eval/success_rate")
            if success is not None and success > best:
                best = success
                save_policy(out / "policy_best", copy.deepcopy(learner.policy).cpu().eval(),
                            step_meta | {"eval_success": success})
            if (it + 1) % cfg.ckpt_every == 0 or it + 1 == end:
                save_outputs(out, learner, step_meta)
                learner.save_state(out, it + 1, step_meta | {"best_success": best})
    finally:
        for env in [*envs, *([eval_env] if eval_env is not None else [])]:
            env.close()
        logger.close()
    if end < cfg.iterations:
        return None
    rows = logger.rows
    result = OnlineResult(str(out / "policy.json"), cfg.iterations,
                          [r["eval/success_rate"] for r in rows if "eval/success_rate" in r],
                          [r["rollout/success_rate"] for r in rows if "rollout/success_rate" in r], env_steps)
    (out / "result.json").write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n")
    return result


def save_outputs(out: Path, learner: Learner, meta: dict[str, Any]) -> None:
    """``policy.*``, ``student.*`` (EMA weights when on) and ``value.safetensors`` of the current iteration."""
    save_policy(out / "policy", copy.deepcopy(learner.policy).cpu().eval(), meta)
    if learner.student is not None:
        student = learner.ema.model if learner.ema is not None else learner.student
        save_policy(out / "student", copy.deepcopy(student).cpu().eval(), meta | {"ema": learner.ema is not None})
    save_tensors(out / "value.safetensors", learner.value.state_dict(), {"format": VALUE_FORMAT})
