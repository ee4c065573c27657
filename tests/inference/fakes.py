"""Fake models with known outputs and the tiny model sizes shared by the inference tests."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from tests.tiny import TINY_SEPARATOR

RATE = TINY_SEPARATOR["sample_rate"]
TINY = TINY_SEPARATOR


class Identity(nn.Module):
    """Unconditional fake: outputs (mix, −mix), both exact, and counts its calls."""

    def __init__(self, sample_rate: int = RATE) -> None:
        super().__init__()
        self.config = SimpleNamespace(sample_rate=sample_rate, n_outputs=2)
        self.batches: list[int] = []

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        self.batches.append(mix.shape[0])
        return torch.stack([mix, -mix], dim=1)


class Lookup(nn.Module):
    """A model whose outputs are fixed in advance: for each known mixture (matched by content)
    it returns the stored (K, T) outputs, whatever the prompts. Prompted when `prompts` is
    given, else unconditional with K outputs. Records the prompts of every call."""

    def __init__(
        self, table: list[tuple[torch.Tensor, torch.Tensor]], prompts: tuple[str, ...] = ()
    ) -> None:
        super().__init__()
        self.table = table
        k = table[0][1].shape[0]
        fields = {"prompts": prompts} if prompts else {"n_outputs": k}
        self.config = SimpleNamespace(sample_rate=RATE, **fields)
        self.calls: list[object] = []

    def forward(self, mix: torch.Tensor, prompts: object = None) -> torch.Tensor:
        self.calls.append(prompts)
        rows = []
        for row in mix:
            found = [out for known, out in self.table if torch.equal(known, row)]
            assert found, "the Separator passed a mixture this fake does not know"
            rows.append(found[0])
        return torch.stack(rows)


class StereoSwap(nn.Module):
    """Stereo fake: (B, 2, T) → (B, 2, 2, T) = (mix, mix with left and right swapped); records
    the shape of every call."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(sample_rate=RATE, n_outputs=2, audio_channels=2)
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(mix.shape))
        return torch.stack([mix, mix.flip(1)], dim=1)
