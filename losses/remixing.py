"""Teacher-student remixing: Self-Remixing (Saijo & Ogawa 2023) and RemixIT.

A teacher separates each mixture x_b into K sources (made mixture-consistent). The sources are
shuffled across the batch into pseudo-mixtures, which the student separates. RemixIT compares
the student's outputs with the shuffled teacher sources (PIT); Self-Remixing scatters the
student's outputs back to the examples they came from and compares their sum with the
*original* mixtures, so the target is real audio rather than teacher estimates.

A shuffle is a (B, K) tensor of flat indices into the B·K source slots of the batch: slot
(b, k) of the shuffled batch holds source `idx[b, k] % K` of example `idx[b, k] // K`. It is a
bijection, so the inverse (`unremix`) is a gather with the inverse permutation.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
from torch import Tensor

from losses.permutation import pit
from losses.signal import float32, thresholded_snr


def batch_shuffle(
    batch: int,
    sources: int,
    *,
    constrained: bool = True,
    channel_shuffle: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw a shuffle of K sources across a batch of B examples.

    Source slot k of pseudo-mixture b comes from example π_k(b), one batch permutation per k.

    Args:
        batch: B.
        sources: K.
        constrained: every pseudo-mixture takes its K sources from K different examples
            (needs B ≥ K); otherwise each π_k is an independent uniform permutation.
        channel_shuffle: also permute the K source slots within each example first, so that
            source k of one example can meet source k' ≠ k of another.
        generator: for reproducible draws (a CPU generator; indices are moved to `device`).
    Returns:
        (B, K) long flat indices into the B·K source slots.
    """
    if constrained and batch < sources:
        raise ValueError(
            f"a constrained shuffle needs batch size ≥ number of sources, got B={batch}, "
            f"K={sources}; use constrained=False or a larger batch"
        )

    def randperm(*shape: int) -> Tensor:  # independent uniform permutations of the last axis
        return torch.rand(*shape, generator=generator).argsort(-1)

    if constrained:
        # π_k(b) = σ((ρ(b) + o_k) mod B): distinct offsets o_k make the K examples distinct.
        sigma, rho, offsets = randperm(batch), randperm(batch), randperm(batch)[:sources]
        example = sigma[(rho.unsqueeze(1) + offsets.unsqueeze(0)) % batch]  # (B, K)
    else:
        example = randperm(sources, batch).T  # (B, K)
    slot = torch.arange(sources).expand(batch, sources)
    if channel_shuffle:
        slot = randperm(batch, sources).gather(0, example)  # τ_{π_k(b)}(k)
    return (example * sources + slot).to(device)


def remix(sources: Tensor, shuffle: Tensor) -> tuple[Tensor, Tensor]:
    """Shuffle sources across the batch and sum them into pseudo-mixtures.

    Args:
        sources: (B, K, ..., T) sources of each example.
        shuffle: (B, K) flat indices from `batch_shuffle`.
    Returns:
        shuffled sources (B, K, ..., T) and pseudo-mixtures (B, ..., T).
    """
    shuffled = sources.flatten(0, 1)[shuffle]
    return shuffled, shuffled.sum(1)


def unremix(shuffled: Tensor, shuffle: Tensor) -> Tensor:
    """Inverse of `remix`'s shuffle: put every source slot back in its original example.

    Args:
        shuffled: (B, K, ..., T) sources in shuffled order (e.g. aligned student outputs).
        shuffle: (B, K) the flat indices used by `remix`.
    Returns:
        (B, K, ..., T) with `unremix(remix(s, idx)[0], idx) == s`.
    """
    inverse = shuffle.flatten().argsort()
    return shuffled.flatten(0, 1)[inverse].view_as(shuffled)


def keep_most_energetic(est: Tensor, k: int) -> Tensor:
    """The k outputs of highest energy, loudest first: (B, M, ..., T) → (B, k, ..., T).

    Used to start a K-source teacher from an M-output MixIT model.
    """
    order = est.detach().pow(2).flatten(2).sum(-1).argsort(dim=1, descending=True)[:, :k]
    return est[torch.arange(est.shape[0], device=est.device).unsqueeze(1), order]


class RemixingLoss(NamedTuple):
    loss: Tensor  # (B,) weighted sum of the two terms
    self_remixing: Tensor  # (B,) per original example: Σ of scattered-back outputs vs x_b
    remixit: Tensor  # (B,) per pseudo-mixture: PIT loss against the shuffled teacher sources
    perm: Tensor  # (B, K) PIT alignment of student outputs to shuffled teacher sources


@float32
def remixing_loss(
    student: Tensor,
    teacher_sources: Tensor,
    mixtures: Tensor,
    shuffle: Tensor,
    *,
    self_remixing_weight: float = 1.0,
    remixit_weight: float = 0.0,
    snr_max: float | None = 30.0,
) -> RemixingLoss:
    """Self-Remixing and RemixIT losses, and their weighted sum.

    Args:
        student: (B, K, T) student outputs for the pseudo-mixtures `remix(teacher_sources,
            shuffle)[1]`.
        teacher_sources: (B, K, T) teacher sources of the original mixtures (no gradient
            flows into them; apply `mixture_consistency` beforehand).
        mixtures: (B, T) the original mixtures x.
        shuffle: (B, K) flat indices from `batch_shuffle`.
        self_remixing_weight, remixit_weight: weights of the two terms (Self-Remixing alone by
            default; RemixIT alone is (0, 1)).
    Returns:
        `RemixingLoss(loss, self_remixing, remixit, perm)`, each loss (B,).
    """
    loss_fn = functools.partial(thresholded_snr, snr_max=snr_max)
    targets, _ = remix(teacher_sources.detach(), shuffle)
    aligned = pit(student, targets, loss=loss_fn)
    reconstructed = unremix(aligned.est, shuffle).sum(1)  # (B, T) back in original examples
    self_remixing = loss_fn(reconstructed, mixtures)
    total = self_remixing_weight * self_remixing + remixit_weight * aligned.loss
    return RemixingLoss(total, self_remixing, aligned.loss, aligned.perm)
