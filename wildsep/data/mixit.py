"""Mixtures of mixtures for MixIT (reference §3): x̄ = x₁ + x₂ with x₁, x₂ two random clips."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from wildsep.data.clips import STREAM_GAIN, ClipDataset, keyed_rng, parse_key
from wildsep.data.config import MixITConfig


class MixtureOfMixturesDataset(Dataset):
    """Pairs of clips. Item ``(epoch, i)`` holds the clips at positions 2i and 2i+1 of the
    clip dataset's epoch order, so pairs change every epoch and no file repeats within one.

    Returns the two reference mixtures, float32 (2, T) (or (2, 2, T) for stereo clips), each
    with an independent random gain when ``config.gain_db`` is set; with probability
    ``config.silent_prob`` the second is all zeros (the MoM is then the first mixture alone).
    Every draw is keyed on (seed, epoch, i). Collate with :func:`collate_mixture_of_mixtures`.
    """

    def __init__(self, clips: ClipDataset, config: MixITConfig | None = None) -> None:
        if len(clips) < 2:
            raise ValueError("a mixture of mixtures needs at least two files in the corpus")
        self.clips = clips
        self.config = config or MixITConfig()

    def __len__(self) -> int:
        return len(self.clips) // 2

    def __getitem__(self, key: int | Sequence[int]) -> torch.Tensor:
        epoch, i = parse_key(key)[:2]
        i %= len(self)
        pair = np.stack([self.clips.draw(epoch, 2 * i), self.clips.draw(epoch, 2 * i + 1)])
        rng = keyed_rng(self.clips.seed, STREAM_GAIN, epoch, i)
        if self.config.gain_db is not None:
            low, high = self.config.gain_db
            gains_db = rng.uniform(low, high, 2)
            pair *= (10.0 ** (gains_db / 20.0)).astype(np.float32)[:, None, None]
        if self.config.silent_prob > 0 and rng.random() < self.config.silent_prob:
            pair[1] = 0.0
        return torch.from_numpy(pair[:, 0] if pair.shape[1] == 1 else pair)


def collate_mixture_of_mixtures(items: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Batch of B pairs (2, [C,] T) from :class:`MixtureOfMixturesDataset`.

    Returns ``{"mixture": (B, [C,] T), "references": (B, 2, [C,] T)}`` with
    mixture = references.sum(1).
    """
    references = torch.stack(items)
    return {"mixture": references.sum(1), "references": references}


def pair_clips(items: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Collate 2B single clips ([C,] T) into B mixtures of mixtures (consecutive pairs), for
    streams of clips such as :class:`wildsep.data.StreamingClipDataset`."""
    if len(items) % 2:
        raise ValueError(f"pairing needs an even number of clips, got {len(items)}")
    clips = torch.stack(items)
    references = clips.reshape(len(items) // 2, 2, *clips.shape[1:])
    return {"mixture": references.sum(1), "references": references}
