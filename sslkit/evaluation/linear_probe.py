"""Linear probes on cached features: a grid of heads trained in one pass, and an L-BFGS mode.

dinov2's linear evaluation trains one head per (learning rate, ...) setting on the same batches so
the backbone runs once; here the features are cached, so the backbone does not run at all, and the
whole grid is one GEMM per step: the ``H`` heads' weights sit side by side in a ``(D, H * C)``
matrix. Each head's loss is its own batch mean, so heads never share a gradient, and every head
starts from the same initialisation and sees the same batches (one seeded generator): a head
trained in the grid ends where it would alone.

Protocol (:func:`linear_probe`): standardise features with training statistics, hold out a
seeded fraction of the training set, train the grid on the rest, pick the head with the best
held-out top-1, report that head's test accuracy (and every head's, for the grid figure).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from itertools import product

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslkit.evaluation.knn import ArrayLike, to_numpy

DEFAULT_LRS: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
DEFAULT_WDS: tuple[float, ...] = (0.0, 1e-4, 1e-3)


class LinearProbeGrid(nn.Module):
    """``H = len(lrs) * len(wds)`` linear heads over the same features, trained together.

    Plain SGD with momentum and a cosine schedule, each head with its own learning rate and
    weight decay (decay on weights, not biases).

    Args:
        dim: feature dimension ``D``.
        num_classes: ``C``.
        lrs: learning rates of the grid.
        wds: weight decays of the grid.
        momentum: SGD momentum, shared.
        seed: initialisation seed; every head gets the same initial weights.
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        lrs: Sequence[float] = DEFAULT_LRS,
        wds: Sequence[float] = DEFAULT_WDS,
        momentum: float = 0.9,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.settings: list[tuple[float, float]] = list(product(lrs, wds))  # head h = (lr, wd)
        self.num_heads, self.num_classes, self.momentum = len(self.settings), num_classes, momentum
        init = torch.randn(dim, 1, num_classes, generator=torch.Generator().manual_seed(seed)) * 0.01
        self.weight = nn.Parameter(init.repeat(1, self.num_heads, 1))  # (D, H, C)
        self.bias = nn.Parameter(torch.zeros(self.num_heads, num_classes))  # (H, C)
        self.register_buffer("lr", torch.tensor([s[0] for s in self.settings]))  # (H,)
        self.register_buffer("wd", torch.tensor([s[1] for s in self.settings]))  # (H,)
        self._velocity = [torch.zeros_like(self.weight), torch.zeros_like(self.bias)]

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, H, C)`` of features ``(B, D)``: one GEMM for the whole grid."""
        dim = self.weight.shape[0]
        return (feats @ self.weight.view(dim, -1)).view(-1, self.num_heads, self.num_classes) + self.bias

    def loss(self, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Sum over heads of each head's mean cross-entropy: heads' gradients stay separate."""
        logits = self(feats)  # (B, H, C)
        targets = labels[:, None].expand(-1, self.num_heads)
        return F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(0).sum()

    @torch.no_grad()
    def gradients(self, feats: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients of :meth:`loss` in closed form: ``(softmax - onehot) / B`` through the GEMM.

        Same numbers as autograd with a third of the kernel launches, which matters on a busy CPU
        where every parallel op waits for a descheduled thread.
        """
        num = feats.shape[0]
        grad = torch.softmax(self(feats), dim=-1)  # (B, H, C)
        grad.sub_(F.one_hot(labels, self.num_classes).to(grad.dtype)[:, None, :]).div_(num)
        grad_weight = (feats.T @ grad.view(num, -1)).view_as(self.weight)  # (D, H, C)
        return grad_weight, grad.sum(0)

    @torch.no_grad()
    def sgd_step(self, lr_factor: float, grads: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """One SGD-momentum step of every head (PyTorch's SGD update, per-head lr and decay).

        Args:
            lr_factor: the schedule's multiplier of each head's learning rate.
            grads: ``(d weight, d bias)``; default: the ``.grad`` autograd left.
        """
        grads = grads or (self.weight.grad, self.bias.grad)
        lr = (self.lr * lr_factor)[:, None]  # (H, 1): broadcasts over (D, H, C) and (H, C)
        for i, (param, grad) in enumerate(zip((self.weight, self.bias), grads)):
            velocity = self._velocity[i].mul_(self.momentum).add_(grad)
            if i == 0:  # weight decay on weights only
                velocity.addcmul_(param, self.wd[:, None])
            param.addcmul_(velocity, lr, value=-1.0)

    def fit(
        self, feats: torch.Tensor, labels: torch.Tensor, epochs: int, batch_size: int, seed: int = 0
    ) -> LinearProbeGrid:
        """Train every head for ``epochs`` over ``feats`` ``(N, D)``, batches shuffled by ``seed``."""
        self._velocity = [v.to(self.weight.device) for v in self._velocity]
        generator = torch.Generator().manual_seed(seed)
        num = feats.shape[0]
        steps_per_epoch = math.ceil(num / batch_size)
        total = epochs * steps_per_epoch
        for step in range(total):
            if step % steps_per_epoch == 0:
                order = torch.randperm(num, generator=generator).to(feats.device)
            idx = order[(step % steps_per_epoch) * batch_size :][:batch_size]
            grads = self.gradients(feats[idx], labels[idx])
            self.sgd_step(0.5 * (1.0 + math.cos(math.pi * step / total)), grads)
        return self

    @torch.no_grad()
    def accuracy(self, feats: torch.Tensor, labels: torch.Tensor, top: int = 1, chunk: int = 8192) -> np.ndarray:
        """Top-``top`` accuracy in % of every head ``(H,)``."""
        hits = torch.zeros(self.num_heads, dtype=torch.float64)
        for i in range(0, feats.shape[0], chunk):
            logits = self(feats[i : i + chunk])  # (b, H, C)
            best = logits.topk(min(top, self.num_classes), dim=-1).indices  # (b, H, top)
            hits += (best == labels[i : i + chunk, None, None]).any(-1).sum(0).double().cpu()
        return (100.0 * hits / feats.shape[0]).numpy()


def standardize(
    train: torch.Tensor, *others: torch.Tensor, eps: float = 1e-6
) -> tuple[torch.Tensor, ...]:
    """Centre and scale every feature with the training set's mean and std (float64 statistics)."""
    mean = train.double().mean(0)
    std = train.double().std(0).clamp_min(eps)
    return tuple(((x.double() - mean) / std).float() for x in (train, *others))


def holdout_split(num: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (fit, held-out) row indices of a training set, both sorted."""
    order = np.random.default_rng(seed).permutation(num)
    num_held = max(1, int(round(fraction * num)))
    return np.sort(order[num_held:]), np.sort(order[:num_held])


def _tensors(feats: ArrayLike, labels: ArrayLike, device: str | torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.array(to_numpy(feats), dtype=np.float32, order="C")).to(device)  # copy: memmaps are read-only
    return x, torch.from_numpy(to_numpy(labels).astype(np.int64).reshape(-1)).to(device)


def linear_probe(
    train_feats: ArrayLike,
    train_labels: ArrayLike,
    test_feats: ArrayLike,
    test_labels: ArrayLike,
    lrs: Sequence[float] = DEFAULT_LRS,
    wds: Sequence[float] = DEFAULT_WDS,
    epochs: int = 50,
    batch_size: int = 1024,
    holdout_fraction: float = 0.1,
    seed: int = 0,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """The cached-feature linear-probe protocol over an (lr x wd) grid.

    Returns:
        ``{"best": {"lr", "wd", "holdout_top1", "test_top1", "test_top5"}, "grid": [{"lr", "wd",
        "holdout_top1", "test_top1"}, ...], "num_train", "num_holdout", "num_test", "train_s"}``.
        ``test_top1`` of the grid is for figures only: the head is chosen on the held-out split.
    """
    x_train, y_train = _tensors(train_feats, train_labels, device)
    x_test, y_test = _tensors(test_feats, test_labels, device)
    num_classes = num_classes or int(max(y_train.max(), y_test.max())) + 1
    fit_idx, held_idx = (torch.from_numpy(i).to(device) for i in holdout_split(len(y_train), holdout_fraction, seed))
    x_fit, x_held, x_test = standardize(x_train[fit_idx], x_train[held_idx], x_test)
    y_fit, y_held = y_train[fit_idx], y_train[held_idx]
    start = time.perf_counter()
    grid = LinearProbeGrid(x_fit.shape[1], num_classes, lrs, wds, seed=seed).to(device)
    grid.fit(x_fit, y_fit, epochs, batch_size, seed)
    train_s = time.perf_counter() - start
    held, test1, test5 = grid.accuracy(x_held, y_held), grid.accuracy(x_test, y_test), grid.accuracy(x_test, y_test, 5)
    best = int(np.argmax(held))  # first of equals: the grid order decides ties
    rows = [
        {"lr": lr, "wd": wd, "holdout_top1": float(h), "test_top1": float(t)}
        for (lr, wd), h, t in zip(grid.settings, held, test1)
    ]
    return {
        "best": {**rows[best], "test_top5": float(test5[best])},
        "grid": rows,
        "epochs": epochs,
        "batch_size": batch_size,
        "num_train": len(fit_idx),
        "num_holdout": len(held_idx),
        "num_test": len(y_test),
        "train_s": train_s,
    }


def logistic_regression_probe(
    train_feats: ArrayLike,
    train_labels: ArrayLike,
    test_feats: ArrayLike,
    test_labels: ArrayLike,
    cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
    holdout_fraction: float = 0.1,
    seed: int = 0,
    max_iter: int = 1000,
) -> dict:
    """Multinomial logistic regression by L-BFGS (scikit-learn), ``C`` chosen on a held-out split.

    For small sets (few-shot, <~50k rows): exact convex optimum per ``C``, no learning rate.
    After the choice the model is refit on the whole training set with the chosen ``C``.
    """
    from sklearn.linear_model import LogisticRegression

    x_train, y_train = _tensors(train_feats, train_labels, "cpu")
    x_test, y_test = _tensors(test_feats, test_labels, "cpu")
    fit_idx, held_idx = holdout_split(len(y_train), holdout_fraction, seed)
    x_fit, x_held = (t.numpy() for t in standardize(x_train[fit_idx], x_train[held_idx]))
    rows = []
    for c in cs:
        model = LogisticRegression(C=c, max_iter=max_iter, random_state=seed).fit(x_fit, y_train[fit_idx].numpy())
        rows.append({"C": c, "holdout_top1": 100.0 * float(model.score(x_held, y_train[held_idx].numpy()))})
    best = max(rows, key=lambda r: r["holdout_top1"])  # first of equals
    x_all, x_test_std = (t.numpy() for t in standardize(x_train, x_test))
    model = LogisticRegression(C=best["C"], max_iter=max_iter, random_state=seed).fit(x_all, y_train.numpy())
    proba = model.predict_proba(x_test_std)
    top5 = model.classes_[np.argsort(-proba, axis=1)[:, :5]]
    y = y_test.numpy()
    return {
        "best": {
            **best,
            "test_top1": 100.0 * float(np.mean(top5[:, 0] == y)),
            "test_top5": 100.0 * float(np.mean((top5 == y[:, None]).any(1))),
        },
        "grid": rows,
        "num_train": len(y_train),
        "num_test": len(y),
    }
