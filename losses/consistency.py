"""Mixture consistency projection: make the outputs sum exactly to the input mixture."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor


def mixture_consistency(
    est: Tensor,
    mixture: Tensor,
    weights: Literal["uniform", "power"] | Tensor = "uniform",
    eps: float = 1e-8,
) -> Tensor:
    """Distribute the residual x − Σ_k ŝ_k over the outputs: ŝ_m ← ŝ_m + w_m·(x − Σ_k ŝ_k).

    With weights summing to 1 over the outputs, the projected outputs sum to x exactly.

    Args:
        est: (B, M, T) outputs (any trailing shape after M works, e.g. (B, M, C, T)).
        mixture: (B, T) or (B, 1, T) mixture x (matching trailing shape).
        weights: "uniform" (w_m = 1/M); "power" (w_m ∝ ‖ŝ_m‖², per example; uniform when all
            outputs are silent); or a tensor (B, M) or (B, M, T) of weights, e.g. a softmax
            over outputs predicted by the model.
    Returns:
        (B, M, T) projected outputs.
    """
    if mixture.dim() == est.dim() - 1:
        mixture = mixture.unsqueeze(1)
    residual = mixture - est.sum(1, keepdim=True)
    num_outputs = est.shape[1]
    if isinstance(weights, Tensor):
        w = weights
        while w.dim() < est.dim():
            w = w.unsqueeze(-1)
    elif weights == "uniform":
        w = torch.full((), 1.0 / num_outputs, dtype=est.dtype, device=est.device)
    elif weights == "power":
        power = est.detach().pow(2).flatten(2).sum(-1) + eps / num_outputs  # (B, M)
        w = (power / power.sum(1, keepdim=True)).view(*power.shape, *([1] * (est.dim() - 2)))
    else:
        raise ValueError(f"unknown weights {weights!r}; choose 'uniform', 'power' or a tensor")
    return est + w * residual
