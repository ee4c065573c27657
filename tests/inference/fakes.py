"""Fake models with known outputs and the tiny model sizes shared by the inference tests."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

RATE = 8000
TINY = dict(
    sample_rate=RATE,
    n_fft=128,
    hop=64,
    dim=16,
    heads=2,
    groups=4,
    cross_blocks=1,
    cross_attn_dim=16,
    cross_ffn_hidden=32,
    tse_blocks=1,
    tse_attn_dim=16,
    tse_ffn_hidden=32,
)


class Identity(nn.Module):
    """Unconditional fake: outputs (mix, −mix), both exact, and counts its calls."""

    def __init__(self, sample_rate: int = RATE) -> None:
        super().__init__()
        self.config = SimpleNamespace(sample_rate=sample_rate, n_outputs=2)
        self.batches: list[int] = []

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        self.batches.append(mix.shape[0])
        return torch.stack([mix, -mix], dim=1)
