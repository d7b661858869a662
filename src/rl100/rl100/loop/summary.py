"""The run summary, rebuilt from the ledger: ``summary.md`` (one table row per round) and ``success.png``.

Per round: episodes collected with the carried policy and their success, operator interventions, environment
steps (collection, cumulative collection, evaluation), the offline round's OPE gate decision (``J_old -> J_new``),
re-imitation data, the evaluated success of the CM / DDIM exports, and whether the round's policy was adopted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rl100.loop.collectors import ENV_STEPS, EPISODES, SUCCESS_RATE
from rl100.loop.ledger import Ledger
from rl100.loop.steps import ADOPTED, COLLECT, EVAL_GATE, EVALUATE, MERGE, OFFLINE, ONLINE, REIL

SUMMARY_FILE = "summary.md"
PLOT_FILE = "success.png"


def round_rows(ledger: Ledger, rounds: int) -> list[dict[str, Any]]:
    """One dict per round ``0 .. rounds`` (missing values None while a round is not done)."""
    rows, cumulative = [], 0
    for rnd in range(rounds + 1):
        col, off = ledger.metrics(rnd, COLLECT), ledger.metrics(rnd, OFFLINE)
        ev, reil, data = ledger.metrics(rnd, EVALUATE), ledger.metrics(rnd, REIL), ledger.metrics(rnd, MERGE)
        onl = ledger.metrics(rnd, ONLINE)  # the online phase: its training rollouts count as collected steps
        cumulative += int(col.get(ENV_STEPS, 0)) + int(onl.get(ENV_STEPS, 0))
        wall = sum(float(e.get("wall_s", 0.0)) for e in (ledger.rounds[rnd]["steps"].values()
                                                          if rnd < len(ledger.rounds) else []))
        rows.append({
            "round": rnd, "complete": ledger.done(rnd, EVALUATE),
            "collected": col.get(EPISODES), "rollout_success": col.get(SUCCESS_RATE),
            "interventions": col.get("intervention_episodes"), "intervention_steps": col.get("intervention_steps"),
            "takeover_reasons": col.get("takeover_reasons"),
            "env_steps": col.get(ENV_STEPS, onl.get(ENV_STEPS)), "env_steps_total": cumulative,
            "online_iterations": onl.get("iterations"), "eval_env_steps": ev.get(ENV_STEPS),
            "data_episodes": data.get(EPISODES),
            "gate_accepted": off.get("accepted"), "j_old": off.get("j_old"), "j_new": off.get("j_new"),
            "gate_reason": off.get("reason"),
            "reil_segments": reil.get("intervention_segments"), "reil_rollouts": reil.get("rollout_episodes"),
            "cm_success": ev.get(f"cm_{SUCCESS_RATE}"), "ddim_success": ev.get(f"ddim_{SUCCESS_RATE}"),
            "cm_failures": ev.get("cm_failures"), "ddim_failures": ev.get("ddim_failures"),
            "adopted": ev.get(ADOPTED), "eval_gate": ev.get(EVAL_GATE), "wall_s": round(wall, 1)})
    return rows


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, spec) if spec else str(value)


def _gate(row: dict[str, Any]) -> str:
    if row["gate_accepted"] is None:
        return "–"
    verdict = "accepted" if row["gate_accepted"] else "**rejected**"
    return f"{verdict} (J {_fmt(row['j_old'], '.4g')} → {_fmt(row['j_new'], '.4g')})"


def render_markdown(rows: list[dict[str, Any]], cfg: Any) -> str:
    operator, reil = "on" if cfg.operator is not None else "off", "on" if cfg.reil else "off"
    offline = "on" if getattr(cfg, "offline_rl", True) else "off"
    mode = ", temporal ensembling" if getattr(cfg, "temporal_ensemble", False) else ""
    last_seed = cfg.eval_seed + cfg.eval_episodes - 1
    n_online = getattr(cfg, "online_iterations", 0)
    online = f", then an online phase of {n_online} PPO iterations" if n_online else ""
    lines = [f"# Loop summary: {cfg.task}", "",
             f"Initial policy `{cfg.policy}`; {cfg.rounds} rounds of {cfg.episodes} collected episodes "
             f"(collected with the {cfg.collect_with.upper()} export{mode}, operator {operator}, offline RL {offline}, "
             f"re-imitation {reil}){online}; "
             f"evaluation over {cfg.eval_episodes} episodes (seeds {cfg.eval_seed}..{last_seed}, same every round).",
             "",
             "| round | collected (success) | interventions (steps) | env steps (total) | eval env steps "
             "| data episodes | OPE gate | re-IL segments / rollouts | CM success | DDIM success | adopted | wall s |",
             "|---:|---|---|---|---:|---:|---|---|---:|---:|---|---:|"]
    for r in rows:
        collected = "–" if r["collected"] is None else f"{r['collected']} ({r['rollout_success']:.2f})"
        inter = "–" if r["interventions"] is None else f"{r['interventions']} ({r['intervention_steps']})"
        steps = "–" if r["env_steps"] is None else f"{r['env_steps']} ({r['env_steps_total']})"
        reil = "–" if r["reil_segments"] is None else f"{r['reil_segments']} / {r['reil_rollouts']}"
        phase = "" if r["online_iterations"] is None else f" (online, {r['online_iterations']} it)"
        lines.append(f"| {r['round']}{phase}{'' if r['complete'] else ' (running)'} | {collected} | {inter} | {steps} "
                     f"| {_fmt(r['eval_env_steps'])} | {_fmt(r['data_episodes'])} | {_gate(r)} | {reil} "
                     f"| {_fmt(r['cm_success'], '.2f')} | {_fmt(r['ddim_success'], '.2f')} | {_fmt(r['adopted'])} "
                     f"| {r['wall_s']} |")
    notes = [f"- round {r['round']}: {r['eval_gate']}" for r in rows if r["round"] > 0 and r["eval_gate"]]
    notes += [f"- round {r['round']} takeovers: {r['takeover_reasons']}" for r in rows if r["takeover_reasons"]]
    notes += [f"- round {r['round']} evaluation failures: CM {r['cm_failures']}"
              + (f"; DDIM {r['ddim_failures']}" if r["ddim_failures"] else "") for r in rows if r["cm_failures"]]
    lines += ["", "Round 0 is the initial policy (distilled, exported, evaluated; nothing collected). The OPE gate "
              "keeps the old policy when AM-Q's J does not rise by the margin; a rejected round still adds its "
              "episodes to the data." + (" The online round trains on its own on-policy rollouts in simulation (their "
                                         "env steps in the env-steps column) and adds nothing to the data."
                                         if n_online else ""), "", *notes]
    return "\n".join(lines) + "\n"


def plot_success(rows: list[dict[str, Any]], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for key, label in (("cm_success", "CM export (eval)"), ("ddim_success", "DDIM export (eval)"),
                       ("rollout_success", "collected rollouts")):
        pts = [(r["round"], r[key]) for r in rows if r[key] is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=label)
            drawn = True
    ax.set_xlabel("round")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xticks([r["round"] for r in rows])
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def write_summary(run_dir: Path, rows: list[dict[str, Any]], cfg: Any) -> None:
    text = render_markdown(rows, cfg)
    tmp = run_dir / f".{SUMMARY_FILE}.{os.getpid()}.tmp"
    tmp.write_text(text)
    os.replace(tmp, run_dir / SUMMARY_FILE)
    plot_success(rows, run_dir / PLOT_FILE)
