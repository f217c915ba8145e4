"""Fixtures for masking tests: fake samples carrying the keys masking collators seed from."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def samples() -> list[dict]:
    return [{"views": [torch.zeros(3, 32, 32)], "label": i % 10, "key": f"sample-{i:04d}"} for i in range(8)]
