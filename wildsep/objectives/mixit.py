"""MixIT pre-training objective: separate a mixture of two mixtures, remix, compare."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor, nn

from losses import covariance_loss, mixit, sparsity_l1_l2, sparsity_lp
from wildsep.engine import Objective


class MixITMethod(str, Enum):
    exact = "exact"
    efficient = "efficient"


class SparsityKind(str, Enum):
    l1_l2 = "l1_l2"
    lp = "lp"


@dataclass
class MixITObjectiveConfig:
    method: MixITMethod = MixITMethod.exact
    snr_max: float = 30.0
    sparsity_weight: float = 0.0
    sparsity: SparsityKind = SparsityKind.l1_l2
    sparsity_p: float = 0.5  # exponent of the lp variant
    covariance_weight: float = 0.0
    covariance_center: bool = True  # remove each output's mean first (covariance, not raw ⟨·,·⟩)
    covariance_square: bool = False  # penalise C_ij² instead of |C_ij|
    # An output counts as active when its energy is above this level relative to the MoM's
    # (dB); logged as the number of active outputs, to watch over-separation.
    active_threshold_db: float = -20.0


def count_active(outputs: Tensor, mixture: Tensor, threshold_db: float) -> Tensor:
    """Number of outputs above `threshold_db` relative to the mixture energy: (B, M, T) → (B,)."""
    level = mixture.float().pow(2).sum(-1, keepdim=True) * 10 ** (threshold_db / 10)
    return (outputs.float().pow(2).sum(-1) > level).sum(-1).float()


class MixITObjective(Objective):
    """MixIT with optional sparsity and covariance terms on the MoM outputs.

    Batch: "mixture" (B, T), the mixture of mixtures; "references" (B, N, T), its N mixtures.
    The model maps (B, T) → (B, M, T).
    """

    def __init__(self, config: MixITObjectiveConfig) -> None:
        super().__init__()
        self.config = config

    def forward(
        self, model: nn.Module, batch: dict[str, Tensor], step: int, micro: int = 0
    ) -> dict[str, Tensor]:
        c = self.config
        outputs = model(batch["mixture"])
        result = mixit(outputs, batch["references"], method=c.method.value, snr_max=c.snr_max)
        terms = {"mixit": result.loss.mean()}
        loss = terms["mixit"]
        if c.sparsity_weight > 0:
            sparse = (
                sparsity_l1_l2(outputs)
                if c.sparsity == SparsityKind.l1_l2
                else (sparsity_lp(outputs, p=c.sparsity_p))
            )
            terms["sparsity"] = sparse.mean()
            loss = loss + c.sparsity_weight * terms["sparsity"]
        if c.covariance_weight > 0:
            terms["covariance"] = covariance_loss(
                outputs, center=c.covariance_center, square=c.covariance_square
            ).mean()
            loss = loss + c.covariance_weight * terms["covariance"]
        with torch.no_grad():
            terms["active_outputs"] = count_active(
                outputs, batch["mixture"], c.active_threshold_db
            ).mean()
        terms["loss"] = loss
        return terms
