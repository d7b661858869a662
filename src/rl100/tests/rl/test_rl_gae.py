"""GAE against a hand-computed case (terminal, truncation, trace cut) and the clipped value loss."""

from __future__ import annotations

import torch

from rl100.rl.gae import clipped_value_loss, gae


def test_gae_hand_computed():
    g, lam = 0.9, 0.5
    r = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    v = torch.tensor([[0.5], [1.0], [1.5], [2.0]])
    nv = torch.tensor([[1.0], [1.5], [7.0], [2.5]])  # step 2 ends truncated: bootstrap from its final obs value 7
    term = torch.tensor([[0], [0], [0], [1]])
    done = torch.tensor([[0], [0], [1], [1]])
    adv, ret = gae(r, v, nv, term, done, g, lam)
    d3 = 4.0 - 2.0  # terminal: no bootstrap
    d2 = 3.0 + 0.9 * 7.0 - 1.5
    d1 = 2.0 + 0.9 * 1.5 - 1.0
    d0 = 1.0 + 0.9 * 1.0 - 0.5
    a2 = d2  # trace cut at the episode end
    a1 = d1 + g * lam * a2
    a0 = d0 + g * lam * a1
    torch.testing.assert_close(adv[:, 0], torch.tensor([a0, a1, a2, d3]))
    torch.testing.assert_close(ret, adv + v)


def test_gae_lambda_one_is_discounted_return():
    r = torch.ones(5, 2)
    v = torch.zeros(5, 2)
    adv, _ = gae(r, v, v, torch.zeros(5, 2), torch.zeros(5, 2), 0.5, 1.0)
    torch.testing.assert_close(adv[0], torch.full((2,), sum(0.5**i for i in range(5))))


def test_clipped_value_loss():
    old = torch.tensor([0.0, 0.0])
    ret = torch.tensor([1.0, -1.0])
    new = torch.tensor([0.9, 0.5])
    # element 0: unclipped 0.01, clipped (0.2 - 1)^2 = 0.64 -> 0.64; element 1: (1.5)^2 = 2.25 vs (0.2+1)^2 -> 2.25
    torch.testing.assert_close(clipped_value_loss(new, old, ret, 0.2), torch.tensor(0.5 * (0.64 + 2.25) / 2))
    torch.testing.assert_close(clipped_value_loss(new, old, ret, 0.0), 0.5 * (new - ret).square().mean())
