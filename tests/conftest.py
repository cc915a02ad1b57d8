"""Shared test settings: deterministic, single-threaded torch for stable numbers."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
