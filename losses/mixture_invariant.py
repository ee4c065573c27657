"""Mixture invariant training (MixIT, Wisdom et al. 2020) with exact and efficient assignment.

The model separates a mixture of N mixtures into M ≥ N outputs Ŝ (B, M, T). MixIT searches the
binary mixing matrices A ∈ {0,1}^{N×M} with one 1 per column (each output goes to exactly one
mixture, a mixture may get none) for the one whose remix AŜ best matches the mixtures X:

    min_A (1/N) Σ_n L(A_n Ŝ, x_n),   L = `thresholded_snr`.

For SNR-type losses, every candidate's residual energy follows from M×M and N×M statistics:

    ‖x_n − a_nᵀŜ‖² = ‖x_n‖² − 2 a_nᵀ c_n + a_nᵀ G a_n,   G = ŜŜᵀ,  c_n = Ŝ x_n,

so the waveforms are touched once (one Gram matrix) and the N^M candidates cost O(M²) each,
independent of T. The search splits the outputs into two halves and enumerates each half's
N^(M/2) partial assignments; a candidate's quadratic form is then two small per-half terms plus
a cross term that is one batched matrix product over all pairs of halves. Only the winner's
loss is recomputed on waveforms, which is all autograd sees (the argmin has no gradient).
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from losses.signal import float32, snr_max_to_tau, thresholded_snr


class MixITResult(NamedTuple):
    loss: Tensor  # (B,) mean over the N mixtures of the thresholded SNR loss
    mixing: Tensor  # (B, N, M) binary mixing matrix chosen per example
    remixed: Tensor  # (B, N, T) remixed estimates A Ŝ


@functools.lru_cache(maxsize=64)
def _assignments(n: int, m: int, device: torch.device) -> Tensor:
    """(n^m, n, m) float64 one-hot mixing matrices of every assignment of m outputs to n groups."""
    index = torch.arange(n**m, device=device)
    powers = n ** torch.arange(m, device=device)
    digits = index.unsqueeze(1) // powers % n  # (K, m): the group of each output
    return one_hot_mixing(digits, n).double()


def one_hot_mixing(groups: Tensor, n: int) -> Tensor:
    """Mixing matrices from per-output group indices: (..., M) long → (..., N, M) float."""
    return (groups.unsqueeze(-2) == torch.arange(n, device=groups.device).unsqueeze(-1)).float()


def gram_statistics(est: Tensor, mixtures: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Everything the assignment search needs from the waveforms, in float64.

    Args:
        est: (B, M, T) outputs Ŝ.
        mixtures: (B, N, T) mixtures X.
    Returns:
        G = ŜŜᵀ (B, M, M), C = XŜᵀ (B, N, M) and ‖x_n‖² (B, N).
    """
    est_t = est.transpose(1, 2)
    # Two products beat one on torch.cat([est, mixtures]): no copy of the waveforms.
    gram = torch.bmm(est, est_t).double()
    corr = torch.bmm(mixtures, est_t).double()
    return gram, corr, mixtures.double().pow(2).sum(-1)


def _half_terms(mix: Tensor, gram: Tensor, corr: Tensor) -> Tensor:
    """aᵀGa − 2 a·c_n for partial assignments a over a subset of the outputs.

    Args:
        mix: (K, N, m) partial mixing matrices.
        gram: (B, m, m) Gram matrix of those outputs.
        corr: (B, N, m) correlations of each mixture with those outputs.
    Returns:
        (B, N, K).
    """
    quadratic = torch.einsum("knm,bml,knl->bnk", mix, gram, mix)
    return quadratic - 2 * torch.einsum("knm,bnm->bnk", mix, corr)


def exact_assignment(
    est: Tensor, mixtures: Tensor, snr_max: float | None = 30.0, eps: float = 1e-8
) -> Tensor:
    """The mixing matrix minimising the MixIT loss over all N^M candidates.

    Args:
        est: (B, M, T) separated outputs Ŝ.
        mixtures: (B, N, T) reference mixtures X.
    Returns:
        (B, N, M) binary mixing matrices (float).
    """
    (batch, m, _), n = est.shape, mixtures.shape[1]
    gram, corr, mix_energy = gram_statistics(est, mixtures)

    m1 = (m + 1) // 2
    first, second = _assignments(n, m1, est.device), _assignments(n, m - m1, est.device)
    k1, k2 = first.shape[0], second.shape[0]
    terms1 = _half_terms(first, gram[:, :m1, :m1], corr[..., :m1])  # (B, N, K1)
    terms2 = _half_terms(second, gram[:, m1:, m1:], corr[..., m1:]) + mix_energy.unsqueeze(-1)
    # Cross term a₁ᵀ G₁₂ a₂ for every pair of halves, fused with the per-half terms:
    # residual[b, n, i, j] = ‖x_n − (a₁ᵢ, a₂ⱼ)ᵀŜ‖², one batched matmul per (example, mixture).
    left = torch.einsum("knm,bml->bnkl", first, gram[:, :m1, m1:]).reshape(batch * n, k1, -1)
    right = second.permute(1, 2, 0).expand(batch, n, m - m1, k2).reshape(batch * n, -1, k2)
    residual = torch.baddbmm(
        (terms1.unsqueeze(-1) + terms2.unsqueeze(-2)).reshape(batch * n, k1, k2),
        left,
        right,
        alpha=2,
    ).view(batch, n, k1, k2)
    tau = snr_max_to_tau(snr_max)
    # The −10·log10(‖x_n‖²) term of the loss is the same for every candidate: left out.
    floor = (tau * mix_energy + eps)[..., None, None]
    score = residual.clamp_min_(0).add_(floor).log10_().mean(1)  # (B, K1, K2)
    best = score.flatten(1).argmin(-1)  # (B,) index into K1·K2
    return torch.cat([first[best // k2], second[best % k2]], dim=-1).to(est.dtype)


def efficient_assignment(est: Tensor, mixtures: Tensor, ridge: float = 1e-6) -> Tensor:
    """Efficient MixIT (Wisdom et al. 2021): least-squares mixing, then argmax per output.

    A_LS = argmin_A ‖X − AŜ‖² = X Ŝᵀ (ŜŜᵀ + λI)⁻¹; output m goes to argmax_n A_LS[n, m].
    One-shot O(M²T + M³), not guaranteed optimal. λ = ridge · tr(ŜŜᵀ)/M keeps the solve stable
    when outputs are silent or collinear.

    Args:
        est: (B, M, T) separated outputs Ŝ.
        mixtures: (B, N, T) reference mixtures X.
    Returns:
        (B, N, M) binary mixing matrices (float).
    """
    n, m = mixtures.shape[1], est.shape[1]
    gram, corr, _ = gram_statistics(est, mixtures)
    scale = gram.diagonal(dim1=1, dim2=2).mean(-1) * ridge + 1e-30  # (B,)
    eye = torch.eye(m, dtype=gram.dtype, device=gram.device)
    least_squares = torch.linalg.solve(gram + scale[:, None, None] * eye, corr.transpose(1, 2))
    return one_hot_mixing(least_squares.argmax(-1), n).to(est.dtype)  # argmax over N per output


@float32
def mixit(
    est: Tensor,
    mixtures: Tensor,
    *,
    method: Literal["exact", "efficient"] = "exact",
    snr_max: float | None = 30.0,
    eps: float = 1e-8,
    max_candidates: int = 2**22,
) -> MixITResult:
    """MixIT loss with the best (or efficiently approximated) mixing matrix.

    Args:
        est: (B, M, T) separated outputs of the mixture of mixtures; or (B, M, C, T) for C
            audio channels, where a candidate's SNR sums the energies over the channels.
        mixtures: (B, N, T) (or (B, N, C, T)) the N reference mixtures (N ≥ 1, M ≥ N).
        method: "exact" searches all N^M assignments (on M×M statistics, independent of T);
            "efficient" is the least-squares + argmax projection of Wisdom et al. 2021.
        snr_max: soft cap of `thresholded_snr` in dB; None for plain negative SNR.
        max_candidates: refuse exact search above this many candidates (memory ≈ 8·B·N^(M+1)
            bytes); use method="efficient" there.
    Returns:
        `MixITResult(loss (B,), mixing (B, N, M), remixed (B, N, [C,] T))`.
    """
    if est.dim() == 4 and mixtures.dim() == 4 and est.shape[2] == mixtures.shape[2]:
        # Channels joined end to end: every energy the search and the loss use becomes the
        # sum over channels, and the mixing matrix is shared by the channels of an output.
        flat = mixit(
            est.flatten(2),
            mixtures.flatten(2),
            method=method,
            snr_max=snr_max,
            eps=eps,
            max_candidates=max_candidates,
        )
        return MixITResult(flat.loss, flat.mixing, flat.remixed.view(mixtures.shape))
    if est.dim() != 3 or mixtures.dim() != 3:
        raise ValueError(
            f"mixit expects est (B, M, [C,] T) and mixtures (B, N, [C,] T), got "
            f"{tuple(est.shape)} and {tuple(mixtures.shape)}"
        )
    (batch, m, length), (batch_x, n, length_x) = est.shape, mixtures.shape
    if (batch, length) != (batch_x, length_x) or not 1 <= n <= m:
        raise ValueError(
            f"mixit needs matching B and T and 1 ≤ N ≤ M; got est {tuple(est.shape)}, "
            f"mixtures {tuple(mixtures.shape)}"
        )
    with torch.no_grad():
        if method == "exact":
            if n**m > max_candidates:
                raise ValueError(
                    f"exact MixIT with N={n} mixtures and M={m} outputs has {n**m:,} candidate "
                    f"assignments (limit {max_candidates:,}); use method='efficient'"
                )
            mixing = exact_assignment(est, mixtures, snr_max=snr_max, eps=eps)
        elif method == "efficient":
            mixing = efficient_assignment(est, mixtures)
        else:
            raise ValueError(f"unknown MixIT method {method!r}; choose 'exact' or 'efficient'")
    remixed = torch.bmm(mixing, est)
    loss = thresholded_snr(remixed, mixtures, snr_max=snr_max, eps=eps).mean(-1)
    return MixITResult(loss, mixing, remixed)
