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

PairLoss = Callable[[Tensor, Tensor], Tensor]


class PITResult(NamedTuple):
    loss: Tensor  # (B,) mean loss over sources under the best permutation
    perm: Tensor  # (B, N) long: perm[b, n] is the estimate assigned to reference n
    est: Tensor  # (B, N, ..., T) estimates reordered to match the references


@functools.lru_cache(maxsize=16)
def _all_permutations(n: int) -> Tensor:
    """(n!, n) long tensor of every permutation of range(n)."""
    return torch.tensor(list(itertools.permutations(range(n))), dtype=torch.long)


def pairwise_loss(est: Tensor, ref: Tensor, loss: PairLoss = thresholded_snr) -> Tensor:
    """Loss of every estimate against every reference.

    Args:
        est: (B, N, ..., T) estimates.
        ref: (B, N, ..., T) references.
        loss: maps broadcastable (..., T) pairs to (...).
    Returns:
        (B, N_est, N_ref) losses, averaged over any axes between the source and time axes.
    """
    pairs = loss(est.unsqueeze(2), ref.unsqueeze(1))  # (B, N, N, ...)
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
) -> PITResult:
    """Permutation invariant loss: the assignment of estimates to references that minimises it.

    The search runs detached on the N×N pairwise loss matrix; the returned loss is then
    recomputed on the chosen pairs, so the autograd graph holds N (not N²) waveform losses.

    Args:
        est: (B, N, ..., T) estimates.
        ref: (B, N, ..., T) references.
        loss: pairwise loss (..., T) → (...), lower is better; default `thresholded_snr` (30 dB).
            It must broadcast: it is called on (B, N, 1, ..., T) against (B, 1, N, ..., T).
            For TUSS zero references pass e.g. `lambda e, r: tuss_loss(e, r, mix[:, None, None])`.
        groups: optional (B, N) or (N,) integer labels; only permutations that map every
            reference to an estimate with the same label are allowed (TUSS duplicate prompts:
            estimate n answers prompt n, so estimates and references share the labels).
        exhaustive_max: enumerate all N! permutations up to this N, Hungarian above.
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
        cost = pairwise_loss(est, ref, loss)
        search = _exhaustive if n <= exhaustive_max else _hungarian
        perm = search(cost, same_group)
    est_sorted = est[torch.arange(batch, device=est.device).unsqueeze(1), perm]
    value = loss(est_sorted, ref).flatten(1).mean(-1)
    return PITResult(value, perm, est_sorted)
