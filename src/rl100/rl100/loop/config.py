"""Configuration of the iterative offline-RL loop (``rl100 loop-sim``): one dataclass, validated in ``__post_init__``.

The per-stage settings are nested mappings of the stage's own config fields, validated here by building that
config once: ``offline`` (:class:`rl100.rl.offline.OfflineConfig`), ``il`` (re-imitation) and ``distill``
(:class:`rl100.train.config.TrainConfig`, ``train`` section), ``operator``
(:class:`rl100.loop.operator.OperatorConfig`), ``online`` (:class:`rl100.rl.online_config.OnlineConfig`, the online
phase after the offline rounds). Fields the loop sets itself per round (datasets, policies, output
directories, seeds, device) may not be given there. Overrides: dotted ``key=value`` strings (``offline.ppo_iters=20``,
``il.steps=500``, ``operator.stall_steps=30``), values parsed as YAML.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from rl100.loop.operator import OperatorConfig
from rl100.rl.offline import OfflineConfig
from rl100.rl.online_config import OnlineConfig, load_online_config
from rl100.train.config import TrainConfig, parse_value, set_dotted

SAMPLERS = ("cm", "ddim")
OFFLINE_RESERVED = ("dataset", "policy", "out", "seed", "device")
TRAIN_RESERVED = ("dataset", "out", "init", "seed", "device", "obs_keys", "policy")  # init: re-IL / warm start
ONLINE_RESERVED = ("policy", "task", "task_options", "critics", "student", "out", "iterations", "seed", "device")
ONLINE_PRESET = "online_small"
ONLINE_DEFAULTS: dict[str, Any] = {"eval_episodes": 0}
"""the online phase over the ``online_small`` preset: no evaluation inside it (the loop's evaluate step scores the
phase's exports on the loop's own seeds, as every round's)"""
IL_DEFAULTS: dict[str, Any] = {"steps": 1000, "batch_size": 256, "lr": 1e-5, "warmup_steps": 50, "ema_decay": 0.999,
                               "log_every": 50, "ckpt_every": 10**9}
"""re-imitation: a short fine-tune from the current policy (its normaliser is kept). The optimiser starts fresh, so
the first AdamW steps move every weight by about ``lr``: measured on juicing-place (points policy, DDIM 10/10),
50 steps at lr 1e-4 dropped it to 2/10, at 1e-5 it stayed 10/10."""
DISTILL_DEFAULTS: dict[str, Any] = {"steps": 5000, "batch_size": 256, "lr": 1e-4, "warmup_steps": 200,
                                    "ema_decay": 0.999, "log_every": 50, "ckpt_every": 10**9}
"""consistency distillation (the ``distill_small`` preset's values)"""


def _check_section(name: str, values: dict[str, Any], reserved: tuple[str, ...]) -> None:
    bad = sorted(set(values) & set(reserved))
    if bad:
        raise ValueError(f"{name}.{bad} are set by the loop for each round; do not set them")


def _train_config(name: str, defaults: dict[str, Any], given: dict[str, Any], **per_round: Any) -> TrainConfig:
    values = defaults | given
    if "warmup_steps" not in given:  # a short run given only its steps: the default warm-up must fit in it
        values["warmup_steps"] = min(values["warmup_steps"], values["steps"])
    try:
        return TrainConfig(**values, **per_round)
    except TypeError as exc:
        raise ValueError(f"{name}: {exc}") from None


@dataclass
class LoopConfig:
    policy: str = ""
    """initial diffusion policy JSON (train-il)"""
    task: str = ""
    """rl100.sim task of the simulation collector / evaluator"""
    out: str = "runs/loop"
    """run directory: ledger.json, round_000/, round_001/, ..., summary.md, success.png"""
    rounds: int = 3
    """offline RL rounds after round 0 (round 0 distils, exports and evaluates the initial policy)"""
    episodes: int = 20
    """episodes collected per round with the current policy"""
    eval_episodes: int = 20
    """evaluation episodes per round (the same seeds every round)"""
    eval_seed: int = 1_000_000
    """evaluation episode j is seeded eval_seed + j; collection episodes of round r start at seed + r * 100_003
    (the two ranges may not meet)"""
    seed: int = 0
    dataset: str = ""
    """initial data (demonstrations); empty: the initial policy's training dataset (its checkpoint meta)"""
    student: str = ""
    """consistency student of the initial policy (round 0 then skips distillation)"""
    task_options: dict[str, Any] = field(default_factory=dict)
    """task config fields (e.g. max_steps)"""
    collect_with: str = "cm"
    """which export collects the next round's episodes: cm (deployed one-step) | ddim (the RL-trained policy)"""
    eval_ddim: bool = True
    """also evaluate the DDIM export"""
    operator: dict[str, Any] | None = field(default_factory=dict)
    """scripted-operator thresholds (OperatorConfig fields); None: no operator"""
    expert_skill: float = 1.0
    """skill of the scripted expert the operator drives"""
    offline: dict[str, Any] = field(default_factory=dict)
    """OfflineConfig fields of every round (e.g. critic_steps, ppo_iters, bc_weight)"""
    offline_rl: bool = True
    """run the offline RL step (critics, PPO, OPE gate); off: the ablation where only re-imitation improves the
    policy"""
    reil: bool = True
    """re-imitation after the offline round: train-il --init <round policy> on demos + successful rollouts +
    intervention segments"""
    reil_interventions: bool = True
    """imitate the operator's intervention segments (HIL-SERL); off: the ablation without them (demos and successful
    policy-only rollouts only)"""
    reil_failed_interventions: bool = False
    """also imitate the intervention segments of episodes the operator did not save"""
    il: dict[str, Any] = field(default_factory=dict)
    """TrainConfig fields of re-imitation (over IL_DEFAULTS)"""
    distill: dict[str, Any] = field(default_factory=dict)
    """TrainConfig fields of distillation (over DISTILL_DEFAULTS)"""
    distill_warm_start: bool = True
    """rounds >= 1 start distillation from the student of the policy the round started from (fewer steps
    needed: the teacher moved a little), unless re-imitation refitted the normaliser (``il.refit_normalizer``:
    the old student's weights expect the old scaling); off: from the teacher's weights, as in round 0"""
    eval_gate: bool = True
    """keep the last adopted round's policy for the next round when this round's evaluated success (of the
    ``collect_with`` export) is more than eval_gate_margin below the best adopted round's (not only the previous
    round's: small drops must not add up); the decision is recorded either way. The OPE gate only guards the PPO
    update; this one also covers re-imitation and distillation (cheap in simulation)"""
    eval_gate_margin: float = 0.1
    online_iterations: int = 0
    """online RL after the offline rounds (0: none): one more round (number ``rounds + 1``) of on-policy PPO + GAE
    over the denoising MDP in simulation (:func:`rl100.rl.online.online`) from the last adopted policy, its value
    function warm-started from the last offline round's critics, then distillation, export and evaluation (and the
    eval gate) as in every round"""
    online: dict[str, Any] = field(default_factory=dict)
    """OnlineConfig fields of the online phase (over the online_small preset and ONLINE_DEFAULTS; nested sections
    merge: ``online.ppo.lr=1e-6``)"""
    control_rate: float = 0.0
    """Hz written into the model cards (0: the task's control_hz)"""
    device: str = "auto"
    fsync: bool = True
    """fsync datasets and the ledger (off: scratch runs and tests)"""
    threads: int = 1
    """ONNX Runtime intra-op threads of collection and evaluation"""
    temporal_ensemble: bool = False
    """collect and evaluate replanning every step with temporal ensembling (how the policy node runs the
    shipped model) instead of executing 8-step chunks"""
    disturbances: list[str] = field(default_factory=list)
    """robustness families the collected episodes run under (:mod:`rl100.sim.disturbances` specs: ``move_object``,
    ``push_object:severe``, ``none`` for a nominal episode); the episode seeded s runs under entry s mod the list's
    length, recorded in its meta. Evaluation stays nominal (``rl100 robustness`` scores the families). Empty: all
    nominal"""
    workers: int = 1
    """collection and evaluation processes (each its own simulator and runtime; evaluation results do not depend on
    it, collected episodes do: the noise and the operator's expert continue within a worker's seed range)"""

    def __post_init__(self) -> None:
        self.task_options = dict(self.task_options or {})
        if min(self.rounds, self.episodes, self.eval_episodes, self.workers) < 1 or self.threads < 0:
            raise ValueError("rounds, episodes, eval_episodes and workers must be >= 1, threads >= 0")
        if self.episodes > 100_003:
            raise ValueError("episodes must be <= 100003 (collection seeds of consecutive rounds must not overlap)")
        last = self.collect_seed(self.rounds) + self.episodes - 1
        if self.seed <= last and last >= self.eval_seed and self.seed < self.eval_seed + self.eval_episodes:
            raise ValueError(f"collection seeds ({self.seed}..{last}) would reach the evaluation seeds "
                             f"({self.eval_seed}..): raise eval_seed")
        if not (self.offline_rl or self.reil):
            raise ValueError("offline_rl and reil are both off: nothing would change the policy")
        if self.collect_with not in SAMPLERS:
            raise ValueError(f"collect_with must be one of {SAMPLERS}, got {self.collect_with!r}")
        if not 0 <= self.expert_skill <= 1 or self.eval_gate_margin < 0 or self.control_rate < 0:
            raise ValueError("need expert_skill in [0, 1], eval_gate_margin >= 0, control_rate >= 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto|cpu|cuda, got {self.device!r}")
        if self.operator is not None:
            try:
                self.operator = dataclasses.asdict(OperatorConfig(**self.operator))
            except TypeError as exc:
                raise ValueError(f"operator: {exc}") from None
        _check_section("offline", self.offline, OFFLINE_RESERVED)
        _check_section("il", self.il, TRAIN_RESERVED)
        _check_section("distill", self.distill, TRAIN_RESERVED)
        _check_section("online", self.online, ONLINE_RESERVED)
        self.disturbances = list(self.disturbances or [])
        if self.disturbances:
            from rl100.sim.disturbances import check_specs

            self.disturbances = check_specs(self.disturbances)
        if self.online_iterations < 0:
            raise ValueError(f"online_iterations must be >= 0, got {self.online_iterations}")
        self.offline_config(dataset="-", policy="-", out="-", seed=0)
        self.il_config(dataset="-", out="-", init="", seed=0, obs_keys=["-"], policy={})
        self.distill_config(dataset="-", out="-", seed=0, init="")
        self.online_config(policy="-", critics="", out="-", seed=0)

    # ------------------------------------------------------------------------------------------ stage configs
    def offline_config(self, **per_round: Any) -> OfflineConfig:
        try:
            return OfflineConfig(**self.offline, device=self.device, **per_round)
        except TypeError as exc:
            raise ValueError(f"offline: {exc}") from None

    def il_config(self, **per_round: Any) -> TrainConfig:
        return _train_config("il", IL_DEFAULTS, self.il, device=self.device, **per_round)

    def distill_config(self, **per_round: Any) -> TrainConfig:
        return _train_config("distill", DISTILL_DEFAULTS, self.distill, device=self.device, **per_round)

    def online_config(self, **per_round: Any) -> OnlineConfig:
        """The online phase's config: the preset, V's width and depth of the offline critics (it warm-starts from
        them), then ONLINE_DEFAULTS and ``online`` (nested sections merged), then the task, iterations and device of
        the loop and ``per_round`` (policy, critics, out, seed)."""
        values = dataclasses.asdict(load_online_config(ONLINE_PRESET))
        critic = self.offline_config(dataset="-", policy="-", out="-", seed=0).critic
        values["value"] |= {"hidden": critic.hidden, "layers": critic.layers}  # V warm-starts from these critics
        for key, value in (ONLINE_DEFAULTS | self.online).items():
            if isinstance(value, dict) and isinstance(values.get(key), dict):
                values[key] = values[key] | value
            else:
                values[key] = value
        values |= {"task": self.task, "task_options": dict(self.task_options), "device": self.device,
                   "iterations": max(self.online_iterations, 1)} | per_round  # 1: validated even when off
        try:
            return OnlineConfig(**values)
        except TypeError as exc:
            raise ValueError(f"online: {exc}") from None

    @property
    def last_round(self) -> int:
        """The last round's number: ``rounds``, or ``rounds + 1`` with the online phase."""
        return self.rounds + (1 if self.online_iterations > 0 else 0)

    def online_round(self, rnd: int) -> bool:
        """Whether round ``rnd`` is the online phase."""
        return self.online_iterations > 0 and rnd == self.rounds + 1

    def operator_config(self) -> OperatorConfig | None:
        return OperatorConfig(**self.operator) if self.operator is not None else None

    def collect_seed(self, rnd: int) -> int:
        return self.seed + rnd * 100_003

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def effective(self) -> dict[str, Any]:
        """Every setting as the stages will see it, flattened to dotted keys (``il.intervention_share``): the
        per-stage sections resolved over their defaults, so a value given explicitly equals the same value left to
        its default (how a rerun is compared with the ledger of a run that predates a field)."""
        sections = {"offline": self.offline_config(dataset="-", policy="-", out="-", seed=0),
                    "il": self.il_config(dataset="-", out="-", init="", seed=0, obs_keys=["-"], policy={}),
                    "distill": self.distill_config(dataset="-", out="-", seed=0, init=""),
                    "online": self.online_config(policy="-", critics="", out="-", seed=0)}
        values = self.to_dict() | {k: dataclasses.asdict(v) for k, v in sections.items()}
        return _dotted(values)


def _dotted(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (an empty mapping stays a value)"""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out |= _dotted(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def effective_config(values: dict[str, Any]) -> dict[str, Any]:
    """:meth:`LoopConfig.effective` of a stored ``to_dict()`` (a ledger's); one this code cannot build (a field
    since removed) is compared as written."""
    try:
        return LoopConfig(**values).effective()
    except (TypeError, ValueError):
        return _dotted(values)


def load_loop_config(overrides: list[str] | None = None, **fields: Any) -> LoopConfig:
    """``fields``: top-level values (None skipped); ``overrides``: dotted ``key=value`` strings applied over them."""
    raw: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        if key.split(".")[0] in ("offline", "il", "distill", "operator", "task_options", "online"):
            raw[key.split(".")[0]] = dict(raw.get(key.split(".")[0]) or {})
        set_dotted(raw, key, parse_value(value))
    names = {f.name for f in dataclasses.fields(LoopConfig)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"unknown loop config fields {unknown} (known: {sorted(names)})")
    return LoopConfig(**raw)
