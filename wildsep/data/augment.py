"""Demucs augmentations (reference §5) as batch modules that run on the training device.

Each module maps stacked sources (B, S, C, T) — or (B, S, T) for mono — to augmented sources
of the same layout, with no Python loop over examples or sources. They act in training mode
only (in eval mode :class:`Shift` still crops, so shapes do not depend on the mode).
:class:`Augment` chains them on a batch dict and recomputes mixture = sum of sources, keeping
``prompts`` aligned when :class:`Remix` moves sources between examples.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from wildsep.data.config import AugmentConfig


def _per_source(values: Tensor, sources: Tensor) -> Tensor:
    """(B, S) → broadcastable against sources (B, S, [C,] T)."""
    return values.reshape(*values.shape, *([1] * (sources.dim() - 2)))


def _rand(sources: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(sources.shape[:2], device=sources.device, generator=generator)


class Shift(nn.Module):
    """Delay each source independently by 0…`max_shift` samples, cropping to T − max_shift.

    Reads the crop through a sliding-window view (no copy) and advanced indexing, so only the
    output is allocated. In eval mode every source is cropped at offset 0.
    """

    def __init__(self, max_shift: int) -> None:
        super().__init__()
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.max_shift = max_shift

    def forward(self, sources: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.max_shift == 0:
            return sources
        length = sources.shape[-1] - self.max_shift
        if length <= 0:
            raise ValueError(f"Shift({self.max_shift}) needs more than {self.max_shift} samples")
        if not self.training:
            return sources[..., :length]
        batch, count = sources.shape[:2]
        offsets = torch.randint(
            0, self.max_shift + 1, (batch, count), device=sources.device, generator=generator
        )
        windows = sources.unfold(-1, length, 1)  # (B, S, [C,] max_shift + 1, length), a view
        b = torch.arange(batch, device=sources.device)[:, None]
        s = torch.arange(count, device=sources.device)[None, :]
        if sources.dim() == 4:
            return windows[b, s, :, offsets]
        return windows[b, s, offsets]


class FlipSign(nn.Module):
    """Multiply each source by −1 with probability `p`."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, sources: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if not self.training or self.p == 0:
            return sources
        signs = 1.0 - 2.0 * (_rand(sources, generator) < self.p).to(sources.dtype)
        return sources * _per_source(signs, sources)


class FlipChannels(nn.Module):
    """Swap left and right of each stereo source with probability `p` (no-op for mono)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, sources: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if not self.training or self.p == 0 or sources.dim() != 4 or sources.shape[2] != 2:
            return sources
        flip = _per_source(_rand(sources, generator) < self.p, sources)
        return torch.where(flip, sources.flip(2), sources)


class Scale(nn.Module):
    """Multiply each source by a gain drawn uniformly from [low, high]."""

    def __init__(self, low: float = 0.25, high: float = 1.25) -> None:
        super().__init__()
        if low > high:
            raise ValueError(f"Scale needs low <= high, got {low} > {high}")
        self.low, self.high = low, high

    def forward(self, sources: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if not self.training:
            return sources
        gains = self.low + (self.high - self.low) * _rand(sources, generator)
        return sources * _per_source(gains.to(sources.dtype), sources)


class Remix(nn.Module):
    """Within groups of `group_size` consecutive examples, shuffle each source independently
    across the examples of its group (a trailing partial group shuffles among itself)."""

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        if group_size < 2:
            raise ValueError(f"Remix needs group_size >= 2, got {group_size}")
        self.group_size = group_size

    def permutation(self, sources: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(B, S) long: augmented[b, s] = sources[perm[b, s], s]."""
        batch = sources.shape[0]
        group = torch.arange(batch, device=sources.device) // self.group_size
        # Sorting group id + U[0, 1) keeps groups contiguous and orders each group randomly,
        # independently per source column.
        keys = group[:, None].to(torch.float64) + _rand(sources, generator).to(torch.float64)
        return keys.argsort(dim=0)

    def forward(self, sources: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if not self.training:
            return sources
        return self.apply_permutation(sources, self.permutation(sources, generator))

    @staticmethod
    def apply_permutation(sources: Tensor, perm: Tensor) -> Tensor:
        columns = torch.arange(sources.shape[1], device=sources.device)[None, :]
        return sources[perm, columns]


class Augment(nn.Module):
    """Chain of augmentations applied to a batch's ``references`` (B, S, [C,] T).

    Returns a new batch dict with augmented references, ``mixture`` recomputed as their sum,
    and ``prompts`` (if present) permuted along with :class:`Remix`.
    """

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__()
        self.steps = nn.ModuleList(modules)

    def forward(
        self, batch: dict[str, Any], generator: torch.Generator | None = None
    ) -> dict[str, Any]:
        sources = batch["references"]
        prompts = batch.get("prompts")
        for step in self.steps:
            if isinstance(step, Remix) and step.training:
                perm = step.permutation(sources, generator)
                sources = step.apply_permutation(sources, perm)
                if prompts is not None:
                    rows = perm.tolist()
                    prompts = [[prompts[src][s] for s, src in enumerate(row)] for row in rows]
            else:
                sources = step(sources, generator)
        out = dict(batch)
        out["references"] = sources
        out["mixture"] = sources.sum(1)
        if prompts is not None:
            out["prompts"] = prompts
        return out

    @classmethod
    def from_config(cls, config: AugmentConfig, sample_rate: int) -> Augment:
        """The Demucs chain with the stages `config` enables, in Demucs' order."""
        steps: list[nn.Module] = []
        if config.shift_seconds > 0:
            steps.append(Shift(round(config.shift_seconds * sample_rate)))
        if config.flip_channels_prob > 0:
            steps.append(FlipChannels(config.flip_channels_prob))
        if config.flip_sign_prob > 0:
            steps.append(FlipSign(config.flip_sign_prob))
        if config.remix_group_size:
            steps.append(Remix(config.remix_group_size))
        if config.scale is not None:
            steps.append(Scale(*config.scale))
        return cls(*steps)
