"""The loop's ledger: step states and attempts survive a reopen, a different configuration is refused, outputs must
exist before a step counts as done, metrics are strict JSON, and the file is replaced atomically."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rl100.loop.ledger import LEDGER_FILE, Ledger, LedgerError


def test_steps_attempts_and_reopen(tmp_path):
    cfg = {"rounds": 2, "episodes": 4}
    led = Ledger(tmp_path, cfg, fsync=False)
    assert not led.done(0, "distill") and led.entry(3, "collect") is None
    assert led.start(0, "distill") == 1
    out = tmp_path / "round_000" / "distill" / "policy.json"
    out.parent.mkdir(parents=True)
    out.write_text("{}")
    with pytest.raises(LedgerError, match="outputs missing"):
        led.finish(0, "distill", {"policy": tmp_path / "nope"}, {}, 1.0)
    led.finish(0, "distill", {"policy": out}, {"loss": np.float32(0.5), "j": float("nan"), "n": np.int64(3)}, 1.25)
    assert led.start(1, "collect") == 1  # interrupted: never finished

    again = Ledger(tmp_path, cfg | {"rounds": 5}, fsync=False)  # more rounds: the same run, continued
    assert again.done(0, "distill") and not again.done(1, "collect")
    assert again.outputs(0, "distill") == {"policy": out}
    assert again.metrics(0, "distill") == {"loss": 0.5, "j": None, "n": 3}  # NaN -> None: strict JSON
    stored = json.loads((tmp_path / LEDGER_FILE).read_text())
    assert stored["rounds"][0]["steps"]["distill"]["outputs"] == {"policy": "round_000/distill/policy.json"}
    assert again.start(1, "collect") == 2  # the redo counts as a second attempt
    with pytest.raises(LedgerError, match="already done"):
        again.start(0, "distill")
    with pytest.raises(LedgerError, match="not done"):
        again.outputs(1, "collect")
    assert sorted(p.name for p in tmp_path.iterdir()) == [LEDGER_FILE, "round_000"]  # no temporary file left


def test_other_configuration_is_refused(tmp_path):
    Ledger(tmp_path, {"rounds": 2, "episodes": 4, "offline": {"ppo_iters": 5}}, fsync=False)
    with pytest.raises(LedgerError, match=r"offline: ledger \{'ppo_iters': 5\} vs now \{'ppo_iters': 6\}"):
        Ledger(tmp_path, {"rounds": 2, "episodes": 4, "offline": {"ppo_iters": 6}}, fsync=False)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / LEDGER_FILE).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(LedgerError, match="not a rl100.loop_ledger"):
        Ledger(tmp_path / "x", {}, fsync=False)


def test_loop_config_validation():
    from rl100.loop.config import LoopConfig, load_loop_config

    cfg = load_loop_config(["offline.ppo.lr=3e-6", "il.steps=5", "operator.stall_steps=7",
                            "il.intervention_share=0.5"], policy="p", task="t")
    assert cfg.offline_config(dataset="d", policy="p", out="o", seed=1).ppo.lr == 3e-6
    il = cfg.il_config(dataset="d", out="o", init="", seed=0, obs_keys=["k"], policy={})
    assert il.warmup_steps == 5 and il.intervention_share == 0.5
    with pytest.raises(ValueError, match="intervention_share"):
        load_loop_config(["il.intervention_share=1"]).il_config(dataset="d", out="o", init="", seed=0, obs_keys=["k"],
                                                                 policy={})
    assert cfg.operator_config().stall_steps == 7 and cfg.operator_config().closed_steps == 5
    with pytest.raises(ValueError, match="unknown loop config fields"):
        load_loop_config(["bogus=1"])
    with pytest.raises(ValueError, match=r"offline: .*no_such"):
        LoopConfig(offline={"no_such": 1})
    with pytest.raises(ValueError, match="set by the loop"):
        LoopConfig(il={"init": "x"})
    with pytest.raises(ValueError, match="operator: .*stall"):
        LoopConfig(operator={"stall": 3})
    with pytest.raises(ValueError, match="collect_with"):
        LoopConfig(collect_with="fast")
    with pytest.raises(ValueError, match="evaluation seeds"):
        LoopConfig(rounds=20)  # round 10's collection seeds would reach eval_seed = 1_000_000
    assert LoopConfig(rounds=20, eval_seed=10**9).rounds == 20


def test_done_step_with_missing_outputs_is_an_error(tmp_path):
    led = Ledger(tmp_path, {}, fsync=False)
    led.start(0, "export")
    out = tmp_path / "cm.onnx"
    out.write_bytes(b"x")
    led.finish(0, "export", {"cm_onnx": out}, {}, 0.1)
    out.unlink()
    with pytest.raises(LedgerError, match="outputs are gone"):
        led.outputs(0, "export")


def test_reopen_compares_effective_settings(tmp_path):
    """A ledger written before a field existed reopens when the field is given at its default (an explicit value is
    not a different run), and a real difference is named by its dotted setting."""
    from rl100.loop.config import LoopConfig, effective_config

    cfg = LoopConfig(policy="p", task="t", il={"steps": 7}).to_dict()
    old = json.loads(json.dumps(cfg))
    del old["temporal_ensemble"]  # a top-level field added later
    Ledger(tmp_path, old, fsync=False, comparable=effective_config)
    default = LoopConfig(policy="p", task="t", il={"steps": 7, "intervention_share": 0.0}, temporal_ensemble=False)
    Ledger(tmp_path, default.to_dict(), fsync=False, comparable=effective_config)
    with pytest.raises(LedgerError, match=r"il: ledger"):  # the raw comparison refuses the same settings
        Ledger(tmp_path, default.to_dict(), fsync=False)
    other = LoopConfig(policy="p", task="t", il={"steps": 7, "intervention_share": 0.5})
    with pytest.raises(LedgerError, match=r"differing fields: il\.intervention_share: ledger 0\.0 vs now 0\.5 \("):
        Ledger(tmp_path, other.to_dict(), fsync=False, comparable=effective_config)
    more = LoopConfig(policy="p", task="t", il={"steps": 7}, rounds=5, online_iterations=3, online={"gamma": 0.9})
    assert Ledger(tmp_path, more.to_dict(), fsync=False, comparable=effective_config).changed["rounds"] == (3, 5)
