"""Permutation invariant training (PIT), optionally restricted to groups of identical labels."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from losses.signal import thresholded_snr

# loss(est, ref) → per-pair values, or loss(est, ref, mixture) when `pit(..., mixture=)` is given.
PairLoss = Callable[..., Tensor]


class PITResult(NamedTuple):
    loss: Tensor  # (B,) mean loss over sources under the best permutation
    perm: Tensor  # (B, N) long: perm[b, n] is the estimate assigned to reference n
    est: Tensor  # (B, N, ..., T) estimates reordered to match the references


@functools.lru_cache(maxsize=16)
def _all_permutations(n: int) -> Tensor:
    """(n!, n) long tensor of every permutation of range(n)."""
    return torch.tensor(list(itertools.permutations(range(n))), dtype=torch.long)


def _check_mixture(est: Tensor, mixture: Tensor | None) -> None:
    if mixture is None:
        return
    expected = (est.shape[0], *est.shape[2:])
    if tuple(mixture.shape) != expected:
        raise ValueError(
            f"pit: mixture must be one signal per example, shape {expected} for estimates "
            f"{tuple(est.shape)}; got {tuple(mixture.shape)}"
        )


def _per_pair(loss: PairLoss, est: Tensor, ref: Tensor, mixture: Tensor | None) -> Tensor:
    """`loss` on aligned (B, ...) pairs, with each example's own mixture, shape-checked.

    The check is what makes a per-example tensor closed over by the loss fail loudly instead
    of broadcasting across examples (a (B, 1, 1, T) mixture against (B, N, T) pairs gives
    (B, B, N): every example's loss would mix in every other example's mixture).
    """
    if mixture is None:
        values = loss(est, ref)
    else:
        # mixture (B, ..., T) → (B, 1, ..., 1, ..., T): one per example, broadcast over pairs
        extra = est.dim() - mixture.dim()
        values = loss(est, ref, mixture.reshape(mixture.shape[0], *[1] * extra, *mixture.shape[1:]))
    expected = torch.broadcast_shapes(est.shape, ref.shape)[:-1]
    if values.shape != expected:
        raise ValueError(
            f"pit: the loss returned shape {tuple(values.shape)} for pairs of shape "
            f"{tuple(expected)} + (T,): it must map (..., T) → (...) without broadcasting "
            "across examples; pass a per-example tensor such as the mixture as "
            "pit(..., mixture=...) instead of closing over it"
        )
    return values


def pairwise_loss(
    est: Tensor, ref: Tensor, loss: PairLoss = thresholded_snr, mixture: Tensor | None = None
) -> Tensor:
    """Loss of every estimate against every reference.

    Args:
        est: (B, N, ..., T) estimates.
        ref: (B, N, ..., T) references.
        loss: maps broadcastable (..., T) pairs to (...); called as loss(e, r, m) when
            `mixture` is given.
        mixture: optional (B, ..., T), one per example (see :func:`pit`).
    Returns:
        (B, N_est, N_ref) losses, averaged over any axes between the source and time axes.
    """
    _check_mixture(est, mixture)
    pairs = _per_pair(loss, est.unsqueeze(2), ref.unsqueeze(1), mixture)  # (B, N, N, ...)
    return pairs.flatten(3).mean(-1) if pairs.dim() > 3 else pairs


def _exhaustive(cost: Tensor, same_group: Tensor | None) -> Tensor:
    """Best permutation by enumerating all N! of them at once. cost (B, N, N) → (B, N)."""
    n = cost.shape[-1]
    perms = _all_permutations(n).to(cost.device)  # (P, N)
    refs = torch.arange(n, device=cost.device)
    total = cost[:, perms, refs].sum(-1)  # (B, P): Σ_n cost[b, perm[p, n], n]
    if same_group is not None:
        allowed = same_group[:, perms, refs].all(-1)  # (B, P)
        total = total.masked_fill(~allowed, torch.inf)
    return perms[total.argmin(-1)]


def _hungarian(cost: Tensor, same_group: Tensor | None) -> Tensor:
    """Best permutation by the Hungarian algorithm, one small CPU solve per example."""
    if same_group is not None:
        # A cross-group pair must never be chosen: a cost larger than any full assignment.
        penalty = cost.abs().max() * cost.shape[-1] * 4 + 1
        cost = cost.masked_fill(~same_group, float(penalty))

    def solve(matrix: np.ndarray) -> np.ndarray:
        est_index, ref_index = linear_sum_assignment(matrix)
        return est_index[np.argsort(ref_index)]

    # scipy has no batched solver; this loop runs on N×N matrices only, never on waveforms.
    perms = [solve(m) for m in cost.detach().cpu().double().numpy()]
    return torch.as_tensor(np.stack(perms), dtype=torch.long, device=cost.device)


def pit(
    est: Tensor,
    ref: Tensor,
    loss: PairLoss = thresholded_snr,
    groups: Tensor | None = None,
    exhaustive_max: int = 8,
    *,
    mixture: Tensor | None = None,
) -> PITResult:
    """Permutation invariant loss: the assignment of estimates to references that minimises it.

    The search runs detached on the N×N pairwise loss matrix; the returned loss is then
    recomputed on the chosen pairs, so the autograd graph holds N (not N²) waveform losses.

    Args:
        est: (B, N, ..., T) estimates.
        ref: (B, N, ..., T) references.
        loss: pairwise loss (..., T) → (...), lower is better; default `thresholded_snr` (30 dB).
            It must broadcast: it is called on (B, N, 1, ..., T) against (B, 1, N, ..., T),
            then on the chosen (B, N, ..., T) pairs; a result of any other shape is an error.
            With `mixture` it is called as loss(e, r, m), e.g. `losses.tuss_loss`.
        groups: optional (B, N) or (N,) integer labels; only permutations that map every
            reference to an estimate with the same label are allowed (TUSS duplicate prompts:
            estimate n answers prompt n, so estimates and references share the labels).
        exhaustive_max: enumerate all N! permutations up to this N, Hungarian above.
        mixture: optional (B, ..., T), each example's mixture (one signal, no source axis),
            handed to `loss` as its third argument so that every pair sees its own
            example's mixture (TUSS zero references: τ‖m‖²).
    Returns:
        `PITResult(loss (B,), perm (B, N), est (B, N, ..., T) reordered)`.
    """
    if est.shape != ref.shape:
        raise ValueError(f"pit: est {tuple(est.shape)} and ref {tuple(ref.shape)} must match")
    batch, n = est.shape[:2]
    same_group = None
    if groups is not None:
        groups = torch.as_tensor(groups, device=est.device).expand(batch, n)
        same_group = groups.unsqueeze(2) == groups.unsqueeze(1)  # (B, N_est, N_ref)
    with torch.no_grad():
        cost = pairwise_loss(est, ref, loss, mixture)
        search = _exhaustive if n <= exhaustive_max else _hungarian
        perm = search(cost, same_group)
    est_sorted = est[torch.arange(batch, device=est.device).unsqueeze(1), perm]
    value = _per_pair(loss, est_sorted, ref, mixture).flatten(1).mean(-1)
    return PITResult(value, perm, est_sorted)
