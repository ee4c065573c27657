"""Losses against over-separation in MixIT (Wisdom et al. 2021): sparsity and covariance.

Both are scale-invariant: multiplying all outputs of an example by a constant leaves them
unchanged, so they steer *how* energy is spread over outputs, not how much there is.
"""

from __future__ import annotations

import torch
from torch import Tensor

from losses.signal import float32


def _normalised_powers(est: Tensor, eps: float) -> Tensor:
    """Per-output mean power divided by the example's total: (B, M, ..., T) → (B, M), sums to 1.

    An example whose outputs are all silent (total mean power ≤ `eps`) counts as M equally
    loud outputs (p̃ = 1/M) rather than as all-zero powers, which would put the sparsity
    losses outside their range.
    """
    power = est.pow(2).flatten(2).mean(-1)  # (B, M)
    total = power.sum(1, keepdim=True)
    uniform = torch.full_like(power, 1.0 / power.shape[1])
    return torch.where(total > eps, power / total.clamp_min(eps), uniform)


@float32
def sparsity_l1_l2(est: Tensor, eps: float = 1e-12) -> Tensor:
    """L1/L2 ratio of the per-output RMS vector r (r_m = sqrt(mean_t ŝ_m²)): ‖r‖₁ / ‖r‖₂.

    Equals 1 when one output is active and √M when all M are equally loud, so minimising it
    favours few active outputs. Computed as Σ_m sqrt(p̃_m) with p̃ the powers normalised to sum
    to 1 (the same quantity); `eps` keeps the gradient of sqrt finite at silent outputs.
    All-silent outputs score √M (equally loud: nothing was separated).

    Args:
        est: (B, M, T) outputs (e.g. the MoM separation).
    Returns:
        (B,) loss in [1, √M].
    """
    return (_normalised_powers(est, eps) + eps).sqrt().sum(1)


@float32
def sparsity_lp(est: Tensor, p: float = 0.5, eps: float = 1e-12) -> Tensor:
    """L_p sparsity of the per-output RMS vector relative to its L2 norm: ‖r‖_p^p / ‖r‖₂^p.

    = Σ_m p̃_m^(p/2), in [1, M^(1−p/2)] (all-silent outputs: M^(1−p/2)). p = 1 is
    `sparsity_l1_l2`; smaller p (p < 1) approaches counting the active outputs, penalising
    weak leftover outputs harder.

    Args:
        est: (B, M, T) outputs.
        p: norm exponent, 0 < p < 2.
    Returns:
        (B,) loss.
    """
    if not 0 < p < 2:
        raise ValueError(f"sparsity_lp needs 0 < p < 2, got {p}")
    return (_normalised_powers(est, eps) + eps).pow(p / 2).sum(1)


@float32
def covariance_loss(
    est: Tensor, *, center: bool = True, square: bool = False, eps: float = 1e-8
) -> Tensor:
    """Mean off-diagonal magnitude of the M×M correlation matrix of the outputs.

    C_ij = ⟨ŝ_i, ŝ_j⟩ / (‖ŝ_i‖‖ŝ_j‖), so the loss is 0 for orthogonal outputs and 1 when all
    outputs are copies of one signal (up to sign and scale).

    Args:
        est: (B, M, T) outputs.
        center: remove each output's mean first (covariance rather than raw correlation).
        square: penalise C_ij² instead of |C_ij|.
    Returns:
        (B,) loss in [0, 1].
    """
    num_outputs = est.shape[1]
    if num_outputs < 2:
        return est.new_zeros(est.shape[0])
    x = est.flatten(2)
    if center:
        x = x - x.mean(-1, keepdim=True)
    x = x / (x.norm(dim=-1, keepdim=True) + eps)
    corr = torch.bmm(x, x.transpose(1, 2))  # (B, M, M)
    off_diagonal = ~torch.eye(num_outputs, dtype=torch.bool, device=est.device)
    values = corr[:, off_diagonal]  # (B, M(M−1))
    return (values.square() if square else values.abs()).mean(-1)
