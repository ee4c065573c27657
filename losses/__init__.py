"""Separation objectives: exact, batched, fast. Depends only on torch, numpy and scipy.

Signal losses over (..., T), PIT, MixIT (exact and efficient), mixture consistency,
over-separation regularisers (sparsity, covariance), the semantic loss, and teacher-student
remixing (Self-Remixing, RemixIT). See `losses/README.md`.
"""

from losses.consistency import mixture_consistency
from losses.mixture_invariant import MixITResult, efficient_assignment, exact_assignment, mixit
from losses.overseparation import covariance_loss, sparsity_l1_l2, sparsity_lp
from losses.permutation import PITResult, pairwise_loss, pit
from losses.remixing import (
    RemixingLoss,
    batch_shuffle,
    keep_most_energetic,
    remix,
    remixing_loss,
    unremix,
)
from losses.semantic import semantic_loss
from losses.signal import si_snr, snr, thresholded_snr, tuss_loss, zero_ref_loss

__all__ = [
    "MixITResult",
    "PITResult",
    "RemixingLoss",
    "batch_shuffle",
    "covariance_loss",
    "efficient_assignment",
    "exact_assignment",
    "keep_most_energetic",
    "mixit",
    "mixture_consistency",
    "pairwise_loss",
    "pit",
    "remix",
    "remixing_loss",
    "semantic_loss",
    "si_snr",
    "snr",
    "sparsity_l1_l2",
    "sparsity_lp",
    "thresholded_snr",
    "tuss_loss",
    "unremix",
    "zero_ref_loss",
]
