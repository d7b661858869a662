"""The loop end to end on juicing-place with tiny networks: every artefact and the summary of a two-round run; a
run stopped after k steps and then crashed inside a step resumes to the same artefacts, redoing only the
interrupted step; a harmful offline update is rejected by the OPE gate and recorded; the eval gate keeps the
previous policy when success falls; ``rl100 loop-sim`` builds its config from the command line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rl100.data import Dataset
from rl100.keys import FLAG_INTERVENTION, FLAG_ROLLOUT, FLAGS
from rl100.loop import steps
from rl100.loop.ledger import LEDGER_FILE
from rl100.loop.run import Loop, round_steps, run_loop

pytestmark = pytest.mark.slow


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tensors_sha(path: Path) -> str:
    """Digest of a safetensors file's tensors (names, dtypes, shapes, values); the file's header metadata order is
    not deterministic across processes, so the bytes of two equal checkpoints may differ."""
    h = hashlib.sha256()
    for name, t in sorted(load_file(str(path)).items()):
        h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def artefacts(run: Path) -> dict[str, object]:
    """Everything a round produced that must not depend on interruptions: step metrics (no timings), weights, ONNX
    graphs, dataset arrays, evaluation results."""
    ledger = json.loads((run / LEDGER_FILE).read_text())
    out: dict[str, object] = {}
    for r, rnd in enumerate(ledger["rounds"]):
        for step, entry in rnd["steps"].items():
            out[f"{r}/{step}/metrics"] = entry["metrics"]
            for name, stored in entry["outputs"].items():
                path = Path(stored) if Path(stored).is_absolute() else run / stored
                key = f"{r}/{step}/{name}"
                if path.suffix == ".json" and path.with_suffix(".safetensors").exists():
                    out[key] = tensors_sha(path.with_suffix(".safetensors"))
                elif path.suffix == ".onnx":
                    out[key] = sha(path)
                elif path.is_dir():
                    out[key] = sorted((p.relative_to(path).as_posix(), sha(p)) for p in path.rglob("*.npy"))
                else:
                    out[key] = {k: {m: v for m, v in r.items() if m != "latency"} for k, r in
                                json.loads(path.read_text()).items()}
    return out


def attempts(run: Path) -> dict[str, int]:
    ledger = json.loads((run / LEDGER_FILE).read_text())
    return {f"{r}/{s}": e["attempts"] for r, rnd in enumerate(ledger["rounds"]) for s, e in rnd["steps"].items()}


@pytest.fixture(scope="module")
def full(init_policy, h, tmp_path_factory):
    cfg = h.tiny_config(init_policy, tmp_path_factory.mktemp("full") / "run")
    rows = run_loop(cfg)
    return cfg, rows


def test_two_rounds_end_to_end(full):
    cfg, rows = full
    run = Path(cfg.out)
    assert [r["round"] for r in rows] == [0, 1, 2] and all(r["complete"] for r in rows)
    for r in (0, 1, 2):
        d = run / f"round_{r:03d}"
        for name in ("cm.onnx", "cm.card.json", "ddim.onnx", "ddim.card.json"):
            assert (d / "export" / name).exists(), (r, name)
        results = json.loads((d / "evaluate" / "eval.json").read_text())
        assert set(results) == {"cm", "ddim"} and results["cm"]["episodes"] == 1
        assert sum(results["cm"]["outcomes"]["modes"].values()) == 1  # juicing-place names its failure modes
    for r in (1, 2):
        d = run / f"round_{r:03d}"
        rollouts = Dataset(d / "collect" / "rollouts")
        assert len(rollouts) == 2 and rollouts.num_steps == 2 * 8
        for i in range(2):
            flags = np.asarray(rollouts.episode(i)[FLAGS])
            assert np.all((flags == FLAG_ROLLOUT) | (flags == FLAG_INTERVENTION))
        assert len(Dataset(d / "merge" / "data")) == 2 + 2 * r  # demos + every round's rollouts so far
        for name in ("policy.json", "policy.safetensors", "critics.safetensors", "result.json", "metrics.csv"):
            assert (d / "offline" / name).exists(), (r, name)
        assert (d / "reil" / "il" / "policy.json").exists() and (d / "reil" / "data" / "dataset.json").exists()
        assert (d / "distill" / "policy.json").exists()
    ledger = json.loads((run / LEDGER_FILE).read_text())["rounds"]
    carried = 1 if ledger[1]["steps"]["evaluate"]["metrics"]["adopted"] else 0
    started_from = {1: Path(cfg.student), 2: run / f"round_{carried:03d}" / "distill" / "policy.json"}
    for r in (1, 2):  # warm start: the student of the policy the round started from
        init = ledger[r]["steps"]["distill"]["metrics"]["init"]
        assert (run / init).resolve() == started_from[r].resolve(), r
    assert rows[2]["env_steps_total"] == 2 * 2 * 8 and rows[1]["data_episodes"] == 4
    assert all(r["gate_accepted"] is not None for r in rows[1:])
    assert set(attempts(run).values()) == {1}
    assert len(attempts(run)) == len(round_steps(cfg, 0)) + 2 * len(round_steps(cfg, 1))
    summary = (run / "summary.md").read_text()
    for r in (0, 1, 2):
        assert f"\n| {r} |" in summary
        failed = json.loads((run / f"round_{r:03d}" / "evaluate" / "eval.json").read_text())["cm"]["success_rate"] < 1
        assert (f"- round {r} evaluation failures: CM " in summary) == failed
    assert (run / "success.png").stat().st_size > 1000
    card = json.loads((run / "round_002" / "export" / "cm.card.json").read_text())
    assert card["kind"] == "cm" and card["control_rate_hz"] == 10.0

    from rl100.runtime import PolicyRuntime

    PolicyRuntime(run / "round_002" / "export" / "cm.onnx")  # what the policy node would load

    assert run_loop(cfg) is not None and set(attempts(run).values()) == {1}  # a finished run: nothing reruns


def test_stop_crash_resume_equals_uninterrupted(full, init_policy, h, tmp_path, monkeypatch):
    ref_cfg, _ = full
    cfg = h.tiny_config(init_policy, tmp_path / "run")
    assert run_loop(cfg, stop_after=5) is None  # round 0 (3 steps) + round 1 collect, merge
    assert (tmp_path / "run" / "summary.md").exists()
    done = attempts(tmp_path / "run")
    assert len(done) == 5 and set(done.values()) == {1}

    junk = []

    def crash(cfg_, policy, data, out_dir, seed):  # dies half way through the offline round
        (out_dir / "critics.safetensors").write_bytes(b"half written")
        junk.append(out_dir / "critics.safetensors")
        raise KeyboardInterrupt

    monkeypatch.setattr(steps, "offline_step", crash)
    with pytest.raises(KeyboardInterrupt):
        run_loop(cfg)
    monkeypatch.undo()
    assert json.loads((tmp_path / "run" / LEDGER_FILE).read_text())["rounds"][1]["steps"]["offline"]["status"] \
        == "started"

    rows = run_loop(cfg)
    assert rows is not None and all(r["complete"] for r in rows)
    tries = attempts(tmp_path / "run")
    assert tries.pop("1/offline") == 2 and set(tries.values()) == {1}  # only the interrupted step was redone
    assert load_file(str(junk[0]))  # the half-written file was replaced by a real one
    assert artefacts(tmp_path / "run") == artefacts(Path(ref_cfg.out))


class FakeEvaluator:
    """Success rates in call order (one call per round: eval_ddim off)."""

    def __init__(self, rates):
        self.rates = list(rates)

    def evaluate(self, policy_onnx, n_episodes, seed):
        return {"success_rate": self.rates.pop(0), "episodes": n_episodes, "env_steps": 8 * n_episodes}


def test_gates_never_let_a_worse_policy_through_silently(init_policy, h, tmp_path):
    """A deliberately harmful offline update (negated advantages) is rejected by the OPE gate, the round's policy is
    the unchanged input and the summary says so; with the eval gate on, a round whose success fell is not adopted
    and the next round would start from the previous policy."""
    offline = h.TINY_OFFLINE | {"advantage_scale": -1.0, "critic_steps": 20, "ppo_iters": 4}
    cfg = h.tiny_config(init_policy, tmp_path / "run", rounds=1, reil=False, eval_ddim=False, offline=offline,
                        eval_gate=True, eval_gate_margin=0.1)
    loop = Loop(cfg, evaluator=FakeEvaluator([0.5, 0.2]))
    rows = loop.run()
    off = loop.ledger.metrics(1, steps.OFFLINE)
    assert off["accepted"] is False and off["reason"].startswith("rejected") and off["j_new"] < off["j_old"]
    kept = load_file(str(loop.ledger.outputs(1, steps.OFFLINE)[steps.POLICY].with_suffix(".safetensors")))
    start = load_file(str(Path(cfg.policy).with_suffix(".safetensors")))
    assert kept.keys() == start.keys() and all(torch.equal(kept[k], start[k]) for k in kept)
    assert rows[1]["gate_accepted"] is False and "**rejected**" in (tmp_path / "run" / "summary.md").read_text()
    assert rows[1]["adopted"] is False and "kept the previous policy" in rows[1]["eval_gate"]
    assert loop.carried(1) == 0


def test_eval_gate_measures_against_the_best_adopted_round(init_policy, h, tmp_path):
    """Drops that are each within the margin do not add up: 0.80 -> 0.72 is adopted, 0.65 is then compared with
    0.80 (not 0.72) and refused, and the next round starts from round 1."""
    offline = h.TINY_OFFLINE | {"critic_steps": 10, "ppo_iters": 2}
    cfg = h.tiny_config(init_policy, tmp_path / "run", rounds=2, reil=False, eval_ddim=False, offline=offline,
                        eval_gate=True, eval_gate_margin=0.1)
    loop = Loop(cfg, evaluator=FakeEvaluator([0.8, 0.72, 0.65]))
    rows = loop.run()
    assert rows[1]["adopted"] is True and "vs best adopted 0.800 (round 0" in rows[1]["eval_gate"]
    assert rows[2]["adopted"] is False and "vs best adopted 0.800 (round 0" in rows[2]["eval_gate"]
    assert loop.carried(2) == 1 and loop.best_adopted(2, "cm_success_rate") == (0.8, 0)


def test_reil_only_ablation_skips_offline_rl(init_policy, h, tmp_path):
    cfg = h.tiny_config(init_policy, tmp_path / "run", rounds=1, offline_rl=False, eval_ddim=False)
    assert steps.OFFLINE not in round_steps(cfg, 1)
    loop = Loop(cfg, evaluator=FakeEvaluator([0.5, 0.5]))
    rows = loop.run()
    assert rows[1]["complete"] and rows[1]["gate_accepted"] is None
    assert not (tmp_path / "run" / "round_001" / "offline").exists()
    reil_meta = json.loads((tmp_path / "run" / "round_001" / "reil" / "il" / "policy.json").read_text())["meta"]
    assert f"init {cfg.policy})" in reil_meta["command"]  # re-imitation started from the round's starting policy
    assert "offline RL off" in (tmp_path / "run" / "summary.md").read_text()
    with pytest.raises(ValueError, match="nothing would change the policy"):
        h.tiny_config(init_policy, tmp_path / "x", offline_rl=False, reil=False)


def test_refitted_normaliser_starts_distillation_from_the_teacher(init_policy, h, tmp_path, monkeypatch):
    """A teacher whose normaliser differs from the old student's (re-imitation with il.refit_normalizer) is not
    distilled from that student (its weights expect the old scaling) but from the teacher's weights, and the ledger
    says so."""
    from rl100.policy.checkpoint import load_policy, save_policy

    policy = Path(init_policy[0])
    model = load_policy(policy)
    with torch.no_grad():
        next(iter(model.normalizer.obs.values())).scale.mul_(2.0)
    rescaled = save_policy(tmp_path / "rescaled" / "policy", model)
    assert steps.same_normalizer(policy, policy) and not steps.same_normalizer(policy, rescaled)

    monkeypatch.setattr(steps, "same_normalizer", lambda a, b: False)
    cfg = h.tiny_config(init_policy, tmp_path / "run", rounds=1, eval_ddim=False,
                        il=h.TINY_TRAIN | {"refit_normalizer": True})
    Loop(cfg, evaluator=FakeEvaluator([0.5, 0.5])).run()
    metrics = json.loads((tmp_path / "run" / LEDGER_FILE).read_text())["rounds"][1]["steps"]["distill"]["metrics"]
    assert metrics["init"] == "" and metrics["warm_start"].startswith("skipped")


def test_online_phase_after_the_offline_rounds(init_policy, h, tmp_path):
    """``online_iterations``: round ``rounds + 1`` fine-tunes the last adopted policy online (V warm-started from the
    last offline round's critics), then distils, exports and evaluates like a round; the summary counts its env
    steps; a finished run reruns nothing."""
    from safetensors.torch import load_file as load

    from rl100.loop.ledger import LedgerError

    first = h.tiny_config(init_policy, tmp_path / "run", rounds=1, reil=False, eval_ddim=False)
    Loop(first, evaluator=FakeEvaluator([0.5, 0.5])).run()  # a finished offline run, extended below
    online = {"n_envs": 2, "episodes_per_iter": 2, "minibatch_size": 8, "ppo": {"epochs": 1}}
    cfg = h.tiny_config(init_policy, tmp_path / "run", rounds=1, reil=False, eval_ddim=False,
                        online_iterations=2, online=online)
    assert round_steps(cfg, 2) == [steps.ONLINE, steps.DISTILL, steps.EXPORT, steps.EVALUATE]
    ocfg = cfg.online_config(policy="p", critics="", out="o", seed=0)
    assert (ocfg.value.hidden, ocfg.value.layers) == (16, 1)  # the offline critics' layout: V warm-starts from them
    assert ocfg.ppo.epochs == 1 and ocfg.ppo.clip == 0.2 and ocfg.eval_episodes == 0  # merged over the preset
    run = Path(cfg.out)
    before = attempts(run)
    loop = Loop(cfg, evaluator=FakeEvaluator([0.5]))
    rows = loop.run()
    assert {k: v for k, v in attempts(run).items() if k in before} == before  # only the online round ran
    assert [r["round"] for r in rows] == [0, 1, 2] and all(r["complete"] for r in rows)
    m = loop.ledger.metrics(2, steps.ONLINE)
    assert m["iterations"] == 2 and m["env_steps"] == 2 * 2 * h.MAX_STEPS
    assert m["critics"] == "round_001/offline/critics.safetensors"
    carried = 1 if loop.ledger.metrics(1, steps.EVALUATE)["adopted"] else 0
    assert (run / m["policy"]).resolve() == loop.round_policy(carried).resolve()
    online_policy = run / "round_002" / "online" / "policy.json"
    assert loop.round_policy(2) == online_policy
    assert tensors_sha(online_policy.with_suffix(".safetensors")) != tensors_sha(
        loop.round_policy(carried).with_suffix(".safetensors"))  # PPO moved the weights
    value = load(str(run / "round_002" / "online" / "value.safetensors"))
    assert value and all(torch.isfinite(t).all() for t in value.values())
    assert (run / "round_002" / "export" / "cm.onnx").exists()
    assert rows[2]["env_steps"] == 2 * 2 * h.MAX_STEPS
    assert rows[2]["env_steps_total"] == rows[1]["env_steps_total"] + 2 * 2 * h.MAX_STEPS
    summary = (run / "summary.md").read_text()
    assert "| 2 (online, 2 it) |" in summary and "online phase of 2 PPO iterations" in summary
    before = attempts(run)
    assert Loop(cfg, evaluator=FakeEvaluator([])).run() is not None and attempts(run) == before
    with pytest.raises(LedgerError, match="online phase .round 2. has started"):
        Loop(h.tiny_config(init_policy, run, rounds=1, reil=False, eval_ddim=False, online_iterations=3,
                           online=online))
    with pytest.raises(LedgerError, match="round 2 ran"):  # round 2 was the online round: not an offline one now
        Loop(h.tiny_config(init_policy, run, rounds=2, reil=False, eval_ddim=False))
    with pytest.raises(ValueError, match="set by the loop"):
        h.tiny_config(init_policy, tmp_path / "x", online={"critics": "c"})
    with pytest.raises(ValueError, match="online"):
        h.tiny_config(init_policy, tmp_path / "x", online={"no_such_field": 1})


def test_cli_builds_the_config_and_stops(init_policy, tmp_path):
    from rl100.cli import main

    policy, student = init_policy
    out = tmp_path / "run"
    argv = ["loop-sim", "--policy", str(policy), "--student", str(student), "--task", "juicing-place", "--rounds",
            "2", "--episodes", "3", "--out", str(out), "--device", "cpu", "--stop-after", "1", "--no-reil",
            "--set", "offline.ppo_iters=7", "--set", "offline.ppo.lr=3e-6", "--set", "operator.stall_steps=30",
            "--set", "task_options.max_steps=50", "--set", "online.ppo.lr=1e-6", "--set", "online_iterations=3",
            "--set", "fsync=false"]
    assert main(argv) == 0
    config = json.loads((out / LEDGER_FILE).read_text())["config"]
    assert config["offline"] == {"ppo_iters": 7, "ppo": {"lr": 3e-6}} and config["operator"]["stall_steps"] == 30
    assert config["task_options"] == {"max_steps": 50} and config["reil"] is False and config["episodes"] == 3
    assert config["online"] == {"ppo": {"lr": 1e-6}} and config["online_iterations"] == 3
    assert attempts(out) == {"0/distill": 1}
    with pytest.raises(ValueError, match="set by the loop"):
        main(argv[:-2] + ["--set", "offline.dataset=x"])
