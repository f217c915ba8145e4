"""RankMe against its formula on a known spectrum, and its extremes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sslkit.evaluation.rankme import rankme


def with_spectrum(sigma: np.ndarray, num: int = 64, seed: int = 0) -> np.ndarray:
    """A (num, D) matrix whose singular values are exactly ``sigma``: U diag(sigma) V^T."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(num, len(sigma))))
    v, _ = np.linalg.qr(rng.normal(size=(len(sigma), len(sigma))))
    return u @ np.diag(sigma) @ v.T


def test_matches_the_formula_on_a_known_spectrum():
    sigma = np.array([4.0, 2.0, 1.0, 0.5, 0.25, 0.0])
    p = sigma / sigma.sum() + 1e-7
    expected = math.exp(-np.sum(p * np.log(p)))
    assert rankme(with_spectrum(sigma)) == pytest.approx(expected, rel=1e-9)
    assert 2.0 < expected < 5.0  # neither full rank nor collapsed


def test_flat_spectrum_is_its_rank_and_collapse_is_one():
    assert rankme(with_spectrum(np.array([3.0] * 5 + [0.0] * 3))) == pytest.approx(5.0, rel=1e-5)
    collapsed = torch.ones(128, 16) * torch.randn(1, 16)  # every row the same vector
    assert rankme(collapsed) == pytest.approx(1.0, rel=1e-4)


def test_invariant_to_scale_and_rejects_bad_shapes():
    z = torch.randn(200, 8)
    assert rankme(z) == pytest.approx(rankme(10 * z), rel=1e-9)
    with pytest.raises(ValueError):
        rankme(torch.randn(3, 4, 5))
