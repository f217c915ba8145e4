"""Linear probes: each head of the grid trains exactly as it would alone; the protocol picks on held-out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslkit.evaluation.linear_probe import (
    LinearProbeGrid,
    holdout_split,
    linear_probe,
    logistic_regression_probe,
    standardize,
)


def clustered(num, num_classes=5, dim=24, spread=2.5, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).normal(size=(num_classes, dim)) * 3 + 5  # offset: needs standardising
    labels = rng.integers(0, num_classes, num)
    return (centers[labels] + spread * rng.normal(size=(num, dim))).astype(np.float32), labels


def test_each_head_of_the_grid_equals_that_head_trained_alone():
    x, y = clustered(600)
    (x,) = standardize(torch.from_numpy(x))
    y = torch.from_numpy(y)
    lrs, wds = (0.01, 0.1, 1.0), (0.0, 1e-2)
    grid = LinearProbeGrid(24, 5, lrs, wds, seed=3).fit(x, y, epochs=3, batch_size=64, seed=7)
    accuracies = grid.accuracy(x, y)
    assert len(set(np.round(accuracies, 6))) > 1  # the settings matter, so a mix-up would show
    for h, (lr, wd) in enumerate(grid.settings):
        alone = LinearProbeGrid(24, 5, (lr,), (wd,), seed=3).fit(x, y, epochs=3, batch_size=64, seed=7)
        torch.testing.assert_close(grid.weight[:, h], alone.weight[:, 0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grid.bias[h], alone.bias[0], rtol=1e-5, atol=1e-6)
        assert alone.accuracy(x, y)[0] == accuracies[h]


def test_sgd_step_matches_torch_sgd_for_one_head():
    x, y = clustered(256)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    grid = LinearProbeGrid(24, 5, (0.05,), (1e-3,), seed=0)
    weight = grid.weight[:, 0].detach().clone().requires_grad_(True)  # (D, C)
    bias = grid.bias[0].detach().clone().requires_grad_(True)
    opt_w = torch.optim.SGD([weight], lr=0.05, momentum=0.9, weight_decay=1e-3)
    opt_b = torch.optim.SGD([bias], lr=0.05, momentum=0.9)
    for _ in range(3):
        grid.zero_grad()
        grid.loss(x, y).backward()
        grid.sgd_step(1.0)
        opt_w.zero_grad(), opt_b.zero_grad()
        torch.nn.functional.cross_entropy(x @ weight + bias, y).backward()
        opt_w.step(), opt_b.step()
    torch.testing.assert_close(grid.weight[:, 0], weight.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grid.bias[0], bias.detach(), rtol=1e-5, atol=1e-6)


def test_protocol_chooses_on_held_out_and_reports_test():
    x, y = clustered(1200, seed=1)
    xt, yt = clustered(400, seed=2)
    result = linear_probe(x, y, xt, yt, lrs=(1e-4, 0.1), wds=(0.0,), epochs=5, batch_size=128)
    assert result["num_train"] + result["num_holdout"] == 1200 and result["num_test"] == 400
    best = result["best"]
    assert best["holdout_top1"] == max(r["holdout_top1"] for r in result["grid"])
    assert best["lr"] == 0.1 and best["test_top1"] > 85.0  # lr 1e-4 barely moves in 5 epochs
    assert best["test_top5"] >= best["test_top1"]


def test_holdout_split_is_a_seeded_partition():
    fit, held = holdout_split(100, 0.2, seed=4)
    assert len(held) == 20 and len(np.intersect1d(fit, held)) == 0
    assert np.array_equal(np.sort(np.concatenate([fit, held])), np.arange(100))
    assert np.array_equal(held, holdout_split(100, 0.2, seed=4)[1])


def test_logistic_regression_mode():
    x, y = clustered(500, seed=3)
    xt, yt = clustered(200, seed=4)
    result = logistic_regression_probe(x, y, xt, yt, cs=(1e-4, 1.0))
    assert result["best"]["C"] == 1.0 and result["best"]["test_top1"] > 85.0


def test_closed_form_gradients_equal_autograd():
    x, y = clustered(100)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    grid = LinearProbeGrid(24, 5, (0.1, 1.0), (0.0, 1e-3), seed=1)
    grid.weight.data += 0.1 * torch.randn_like(grid.weight)  # heads differ, logits non-trivial
    grid.loss(x, y).backward()
    grad_weight, grad_bias = grid.gradients(x, y)
    torch.testing.assert_close(grad_weight, grid.weight.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grad_bias, grid.bias.grad, rtol=1e-4, atol=1e-6)
