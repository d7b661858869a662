"""The data the loop learns from: re-imitation keeps demonstrations, successful policy-only rollouts and the
intervention segments (from the takeover on) of saved episodes; the offline round's behaviour-cloning term reads
exactly the intervention windows and is logged when on."""

from __future__ import annotations

import csv

import numpy as np
import torch

from rl100.data import Dataset, DatasetWriter, compute_stats
from rl100.keys import ACTION, FLAG_DEMO, FLAG_INTERVENTION, FLAG_ROLLOUT, FLAGS, OBS_STATE
from rl100.loop.steps import reil_dataset
from rl100.policy.config import EncoderConfig, ObsSpec, PolicyConfig
from rl100.policy.diffusion import DiffusionPolicy
from rl100.rl.offline import FlaggedWindows, OfflineConfig, offline_round

D, L = 3, 10  # state dim, episode length


def write_mixed(root, seed=0):
    """Episodes: 0 demo; 1 rollout success; 2 rollout failure; 3 takeover at step 4, saved; 4 takeover at 6, lost.
    Each step's state and action hold (episode, step) so copies can be traced."""
    kinds = [("demo", None, True), ("rollout", None, True), ("rollout", None, False), ("hil", 4, True),
             ("hil", 6, False)]
    with DatasetWriter(root, meta={"task": "synthetic"}, fsync=False) as w:
        for e, (kind, k, success) in enumerate(kinds):
            ep = w.begin_episode(meta={"kind": kind})
            for t in range(L):
                flags = FLAG_DEMO if kind == "demo" else (FLAG_INTERVENTION if k is not None and t >= k
                                                          else FLAG_ROLLOUT)
                s = np.array([e, t, 0.5], np.float32)
                ep.add_step({OBS_STATE: s}, np.array([e, t], np.float32), float(success and t == L - 1), flags)
            ep.end(success=success)
    return root


def test_reil_dataset_selection(tmp_path):
    src = write_mixed(tmp_path / "merged")
    counts = reil_dataset(src, tmp_path / "reil", failed_interventions=False, fsync=False)
    assert counts == {"demo_episodes": 1, "rollout_episodes": 1, "intervention_segments": 1, "intervention_steps": 6}
    ds = Dataset(tmp_path / "reil")
    assert [int(ds.episode(i)[ACTION][0, 0]) for i in range(len(ds))] == [0, 1, 3]
    seg = ds.episode(2)
    assert seg.length == L - 4 and list(np.asarray(seg[ACTION])[:, 1]) == list(range(4, L))
    assert np.all(np.asarray(seg[FLAGS]) == FLAG_INTERVENTION) and ds.episode_info(2).success
    assert ds.episode_info(2).meta["segment_of"]["start"] == 4
    counts = reil_dataset(src, tmp_path / "reil_all", failed_interventions=True, fsync=False)
    assert counts["intervention_segments"] == 2 and counts["intervention_steps"] == 6 + 4
    counts = reil_dataset(src, tmp_path / "reil_none", failed_interventions=True, fsync=False, interventions=False)
    assert counts == {"demo_episodes": 1, "rollout_episodes": 1, "intervention_segments": 0, "intervention_steps": 0}
    assert [int(Dataset(tmp_path / "reil_none").episode(i)[ACTION][0, 0]) for i in range(2)] == [0, 1]


def tiny_policy(root) -> DiffusionPolicy:
    torch.manual_seed(0)
    cfg = PolicyConfig(obs=[ObsSpec(OBS_STATE, (D,))], action_dim=2, n_obs=2, horizon=4, n_action_steps=2,
                       down_dims=(16, 32), step_embed_dim=16, num_inference_steps=4,
                       encoder=EncoderConfig(lowdim_hidden=16, lowdim_out=8))
    policy = DiffusionPolicy(cfg)
    policy.normalizer.set_stats(compute_stats(Dataset(root), [OBS_STATE, ACTION]))
    return policy


def test_flagged_windows_and_bc_term(tmp_path):
    src = write_mixed(tmp_path / "merged")
    policy = tiny_policy(src)
    windows = FlaggedWindows(Dataset(src), policy.config, batch_size=64, seed=0)
    assert len(windows) == (L - 4) + (L - 6)
    batch = windows.batch(0)
    current = batch[OBS_STATE][:, -1]  # (B, D): the window's current step holds (episode, step)
    ep, t = current[:, 0].long(), current[:, 1].long()
    assert set(ep.tolist()) <= {3, 4} and bool(((ep == 3) & (t >= 4) | (ep == 4) & (t >= 6)).all())
    torch.testing.assert_close(batch[ACTION][:, policy.config.action_start], current[:, :2])
    assert torch.equal(windows.batch(5)[ACTION], FlaggedWindows(Dataset(src), policy.config, 64, 0).batch(5)[ACTION])

    small = {"critic_steps": 3, "ppo_iters": 2, "batch_size": 8, "eval_states": 8, "log_every": 1, "device": "cpu",
             "critic": {"hidden": 16, "layers": 1}}
    on = offline_round(OfflineConfig(dataset=str(src), out=str(tmp_path / "on"), bc_weight=0.5, **small), policy)
    off = offline_round(OfflineConfig(dataset=str(src), out=str(tmp_path / "off"), **small), policy)
    rows_on = list(csv.DictReader(open(tmp_path / "on" / "metrics.csv")))
    rows_off = list(csv.DictReader(open(tmp_path / "off" / "metrics.csv")))
    assert any(r.get("bc/loss") for r in rows_on) and "bc/loss" not in rows_off[0]
    assert on.j_old == off.j_old  # same critics and start states: the term only changes the actor update
