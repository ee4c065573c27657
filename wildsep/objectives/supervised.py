"""Supervised training of an unconditional separator (GASS, reference §10), alone or mixed with
MixIT (the semi-supervised setting of the MixIT paper).

A supervised batch is a dynamic mixture of N labeled sources (N ≤ M, the number of outputs;
the pool classes only steer the mixing). The N references are padded with M − N silent ones
and the M outputs are matched to them by PIT (reference §2): an active reference scores the
thresholded SNR of its output, a silent one the zero-reference loss of its output against the
example's mixture (reference §1, `losses.tuss_loss`), so the unused outputs learn silence.

Semi-supervised MixIT interleaves supervised batches with MoM batches of the unlabeled corpus
at a fixed ratio (deterministic in the position, :func:`wildsep.objectives.interleave_batches`),
or pairs one batch of each on every step and sums the losses (:func:`paired_batches`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor, nn

from losses import PITResult, pit, tuss_loss
from wildsep.engine import Objective
from wildsep.engine.trainer import Batch, BatchSource
from wildsep.metrics import active_references
from wildsep.objectives.mixit import MixITObjective, MixITObjectiveConfig
from wildsep.objectives.semisup import interleave_batches

SUPERVISED, MOM = "supervised", "mom"  # the "kind" of a batch in a semi-supervised run


@dataclass
class SupervisedObjectiveConfig:
    snr_max: float = 30.0  # cap of the thresholded SNR and floor of the zero-reference loss
    zero_ref_weight: float = 0.1  # w₀ of outputs matched to silent references (FUSS used 1)
    # PIT enumerates all M! assignments up to this many outputs, Hungarian above (exact either
    # way; the enumeration is batched, the Hungarian solve is one small CPU call per example).
    exhaustive_max: int = 8

    def __post_init__(self) -> None:
        if self.zero_ref_weight < 0 or self.exhaustive_max < 1:
            raise ValueError("supervised.zero_ref_weight must be >= 0 and exhaustive_max >= 1")


def pad_references(references: Tensor, outputs: int) -> Tensor:
    """(B, N, [C,] T) → (B, M, [C,] T): the N references followed by M − N silent ones."""
    count = references.shape[1]
    if count > outputs:
        raise ValueError(
            f"a batch has {count} references but the model has {outputs} outputs: set "
            f"data.dynamic_mixing.num_sources to at most {outputs}, or more model outputs"
        )
    silent = references.new_zeros(references.shape[0], outputs - count, *references.shape[2:])
    return torch.cat([references, silent], 1)


def supervised_pit(
    outputs: Tensor, references: Tensor, mixture: Tensor, loss_fn, exhaustive_max: int = 8
) -> tuple[PITResult, Tensor]:
    """PIT of (B, M, [C,] T) outputs against (B, N, [C,] T) references (N ≤ M) padded with
    silence, `loss_fn(est, ref, mixture)` seeing each example's own (B, [C,] T) mixture.
    Returns the PIT result and the padded (B, M, [C,] T) references."""
    padded = pad_references(references, outputs.shape[1])
    result = pit(outputs, padded, loss=loss_fn, mixture=mixture, exhaustive_max=exhaustive_max)
    return result, padded


class SupervisedObjective(Objective):
    """PIT over the M outputs against the N references padded with silence.

    Batch: "mixture" (B, [C,] T), "references" (B, N, [C,] T) with N ≤ M (silent references
    allowed). The model maps (B, [C,] T) → (B, M, [C,] T). Logs the loss ("supervised", the
    mean over the M outputs), its parts over active and silent references and the mean number
    of active references.
    """

    def __init__(self, config: SupervisedObjectiveConfig) -> None:
        super().__init__()
        self.config = config
        self.loss_fn = functools.partial(
            tuss_loss, snr_max=config.snr_max, zero_ref_weight=config.zero_ref_weight
        )

    def forward(
        self, model: nn.Module, batch: Batch, step: int, micro: int = 0
    ) -> dict[str, Tensor]:
        mixture = batch["mixture"]
        outputs = model(mixture)
        result, references = supervised_pit(
            outputs, batch["references"], mixture, self.loss_fn, self.config.exhaustive_max
        )
        loss = result.loss.mean()
        terms = {"loss": loss, "supervised": loss.detach()}
        with torch.no_grad():
            values = self.loss_fn(result.est, references, mixture.unsqueeze(1))  # (B, M, ...)
            values = values.flatten(2).mean(-1) if values.dim() > 2 else values
            active = active_references(references.flatten(2))  # RMS over channels
            if active.any():
                terms["supervised_active"] = values[active].mean()
            if (~active).any():
                terms["supervised_silent"] = values[~active].mean()
            terms["active_references"] = active.sum(1).float().mean()
        return terms


# ---------------------------------------------------------------------------------------------
# Semi-supervised MixIT


class SemiSupMode(str, Enum):
    interleave = "interleave"  # a step is either a supervised or a MoM batch
    sum = "sum"  # every step has one of each; the losses are summed


@dataclass
class SemiSupMixITConfig:
    mode: SemiSupMode = SemiSupMode.interleave
    # interleave: the fraction of steps' batches that are supervised, evenly spread
    supervised_ratio: float = 0.5
    supervised_weight: float = 1.0  # of the supervised loss (the MixIT loss has weight 1)

    def __post_init__(self) -> None:
        if not 0.0 <= self.supervised_ratio <= 1.0:
            raise ValueError(
                f"semisup_mixit.supervised_ratio must be in [0, 1], got {self.supervised_ratio}"
            )
        if self.supervised_weight < 0:
            raise ValueError("semisup_mixit.supervised_weight must be >= 0")


def tagged(source: BatchSource, kind: str) -> BatchSource:
    """`source` with every batch marked ``batch["kind"] = kind``."""

    def positioned(position: int) -> Iterator[Batch]:
        for batch in source(position):
            yield {**batch, "kind": kind}

    return positioned


def paired_batches(mom: BatchSource, supervised: BatchSource) -> BatchSource:
    """Position p holds MoM batch p as "mixture"/"references" and supervised batch p under
    "labeled": both sources stay at the global position, so resuming is exact."""

    def positioned(position: int) -> Iterator[Batch]:
        for unlabeled, labeled in zip(mom(position), supervised(position), strict=True):
            yield {**unlabeled, "labeled": labeled}

    return positioned


def semisup_mixit_batches(
    mom: BatchSource, supervised: BatchSource, config: SemiSupMixITConfig
) -> BatchSource:
    """The data of a semi-supervised MixIT stage: interleaved at `supervised_ratio` (each batch
    tagged with its kind) or paired, per `config.mode`."""
    if config.mode == SemiSupMode.sum:
        return paired_batches(mom, supervised)
    return interleave_batches(
        tagged(mom, MOM), tagged(supervised, SUPERVISED), config.supervised_ratio
    )


class SemiSupervisedMixIT(Objective):
    """MixIT on MoM batches, the supervised PIT loss (× `supervised_weight`) on supervised
    ones: batches tagged ``kind == "supervised"`` (interleave), or both on one batch whose
    labeled half is under "labeled" (sum). Logs `supervised_batches` (1 or 0) per step."""

    def __init__(
        self,
        config: SemiSupMixITConfig,
        mixit: MixITObjectiveConfig,
        supervised: SupervisedObjectiveConfig,
    ) -> None:
        super().__init__()
        self.config = config
        self.mixit = MixITObjective(mixit)
        self.supervised = SupervisedObjective(supervised)

    def forward(
        self, model: nn.Module, batch: Batch, step: int, micro: int = 0
    ) -> dict[str, Tensor]:
        weight = self.config.supervised_weight
        labeled = batch.get("labeled")
        if labeled is not None:  # sum mode
            device = batch["mixture"].device
            labeled = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in labeled.items()}
            unsupervised = self.mixit(model, batch, step, micro)
            supervised = self.supervised(model, labeled, step, micro)
            loss = unsupervised["loss"] + weight * supervised["loss"]
            return {**unsupervised, **supervised, "loss": loss}
        if batch.get("kind") == SUPERVISED:
            terms = self.supervised(model, batch, step, micro)
            terms["loss"] = weight * terms["loss"]
            return {**terms, "supervised_batches": torch.tensor(1.0)}
        terms = self.mixit(model, batch, step, micro)
        return {**terms, "supervised_batches": torch.tensor(0.0)}
