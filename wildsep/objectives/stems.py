"""Supervised objective for a fixed stem order (music: drums, bass, vocals, other).

Output s of the model is always stem s — no permutation search — as in Demucs, which trains
with an L1 loss on the waveforms (reference.md §9). Works for mono (B, T) and multichannel
(B, C, T) mixtures alike: a stem's channels count as one signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor, nn

from losses import tuss_loss
from wildsep.engine import Objective

MUSIC_STEMS = ("drums", "bass", "vocals", "other")


class StemLoss(str, Enum):
    l1 = "l1"  # mean |ŝ − s| (Demucs)
    l2 = "l2"  # mean (ŝ − s)²
    snr = "snr"  # thresholded SNR (dB); a silent stem's output is pushed below the mixture


@dataclass
class StemsObjectiveConfig:
    stems: tuple[str, ...] = MUSIC_STEMS  # the order of the references and of the outputs
    loss: StemLoss = StemLoss.l1
    snr_max: float = 30.0  # "snr": cap of the thresholded SNR, dB
    zero_ref_weight: float = 0.1  # "snr": weight of the loss of outputs whose stem is silent

    def __post_init__(self) -> None:
        self.stems = tuple(self.stems)
        self.loss = StemLoss(self.loss)
        if not self.stems or len(set(self.stems)) != len(self.stems):
            raise ValueError(f"stems must be non-empty and unique, got {list(self.stems)}")


def stem_losses(
    estimates: Tensor, references: Tensor, mixture: Tensor, config: StemsObjectiveConfig
) -> Tensor:
    """Loss of every output against the stem at the same index.

    Args:
        estimates, references: (B, S, T) or (B, S, C, T).
        mixture: (B, T) or (B, C, T).
    Returns:
        (B, S) float32: mean absolute / squared error over the stem's samples and channels,
        or the thresholded SNR in dB (`losses.tuss_loss`: silent stems get the zero-reference
        loss relative to the mixture) with the channels of a stem concatenated.
    """
    est = estimates.float().flatten(2)  # (B, S, C·T)
    ref = references.float().flatten(2)
    if config.loss == StemLoss.snr:
        mix = mixture.float().flatten(1)[:, None]  # (B, 1, C·T)
        return tuss_loss(
            est, ref, mix, snr_max=config.snr_max, zero_ref_weight=config.zero_ref_weight
        )
    error = est - ref
    return (error.abs() if config.loss == StemLoss.l1 else error.square()).mean(-1)


class StemsObjective(Objective):
    """Batch: "mixture" (B, T) or (B, C, T); "references" (B, S, T) or (B, S, C, T), the S
    stems in `config.stems` order. The model maps the mixture to estimates shaped like the
    references. Logs "loss" (mean over examples and stems) and "loss_<stem>" per stem."""

    def __init__(self, config: StemsObjectiveConfig) -> None:
        super().__init__()
        self.config = config

    def forward(
        self, model: nn.Module, batch: dict[str, Tensor], step: int, micro: int = 0
    ) -> dict[str, Tensor]:
        mixture, references = batch["mixture"], batch["references"]
        stems = self.config.stems
        if references.shape[1] != len(stems) or references.shape[2:] != mixture.shape[1:]:
            raise ValueError(
                f"references {tuple(references.shape)} must be (B, {len(stems)} stems "
                f"{list(stems)}, *mixture {tuple(mixture.shape)}[1:])"
            )
        estimates = model(mixture)
        if estimates.shape != references.shape:
            raise ValueError(
                f"the model returned {tuple(estimates.shape)}; the references are "
                f"{tuple(references.shape)}"
            )
        per_stem = stem_losses(estimates, references, mixture, self.config)  # (B, S)
        terms = {"loss": per_stem.mean()}
        with torch.no_grad():
            terms |= {f"loss_{name}": v for name, v in zip(stems, per_stem.mean(0), strict=True)}
        return terms
