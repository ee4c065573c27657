"""Semantic loss for MixIT (Wisdom et al. 2021): weak class labels of the input mixtures
supervise class predictions made on the separated outputs, pooled over the outputs that MixIT
assigned to each mixture."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from losses.signal import float32


@float32
def semantic_loss(
    logits: Tensor,
    mixing: Tensor,
    labels: Tensor,
    pooling: Literal["max", "prob_or", "sum"] = "prob_or",
    eps: float = 1e-6,
) -> Tensor:
    """Binary cross-entropy between per-mixture weak labels and pooled per-output predictions.

    Pooled probability of class c for mixture n, over the outputs m with A[n, m] = 1:
      - "max":     max_m σ(z_mc)
      - "prob_or": 1 − Π_m (1 − σ(z_mc))  (class present if any assigned output has it)
      - "sum":     min(1, Σ_m σ(z_mc))
    A mixture with no assigned output predicts probability 0 for every class.

    Args:
        logits: (B, M, C) class logits of each separated output.
        mixing: (B, N, M) binary MixIT mixing matrix (e.g. `mixit(...).mixing`).
        labels: (B, N, C) weak multi-label targets in [0, 1] for each input mixture.
        pooling: how predictions of the outputs assigned to one mixture are combined.
    Returns:
        (B,) BCE averaged over mixtures and classes.
    """
    mixing = mixing.detach().unsqueeze(-1)  # (B, N, M, 1)
    if pooling == "prob_or":
        # log(1 − σ(z)) = −softplus(z): the product becomes a stable sum in log space.
        log_none = -(mixing * F.softplus(logits).unsqueeze(1)).sum(2)  # (B, N, C) log P(absent)
        log_none = log_none.clamp(max=-eps)
        log_present = torch.log(-torch.expm1(log_none))
        bce = -(labels * log_present + (1 - labels) * log_none)
        return bce.mean((1, 2))
    probs = torch.sigmoid(logits).unsqueeze(1) * mixing  # (B, N, M, C), unassigned → 0
    if pooling == "max":
        pooled = probs.amax(2)
    elif pooling == "sum":
        pooled = probs.sum(2).clamp(max=1.0)
    else:
        raise ValueError(f"unknown pooling {pooling!r}; choose 'max', 'prob_or' or 'sum'")
    pooled = pooled.clamp(eps, 1 - eps)
    return F.binary_cross_entropy(pooled, labels.to(pooled.dtype), reduction="none").mean((1, 2))
