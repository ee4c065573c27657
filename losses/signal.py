"""Signal-level separation metrics and losses over the last (time) axis: (..., T) → (...).

All functions compute in float32 with autocast disabled, whatever the input dtype, because
energies of 10⁵-sample signals overflow or lose all precision in bf16/fp16. Every function is
finite, with finite gradients, for silent estimates and silent references.

Metrics (`snr`, `si_snr`) are in dB, higher is better. Losses (`thresholded_snr`,
`zero_ref_loss`, `tuss_loss`) are in dB, lower is better.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor

F = TypeVar("F", bound=Callable[..., Tensor])


def float32(fn: F) -> F:
    """Run `fn` with autocast off and every floating tensor argument upcast to at least float32."""

    def up(x):
        if isinstance(x, Tensor) and x.is_floating_point() and x.dtype != torch.float64:
            return x.float()
        return x

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = next((a.device.type for a in args if isinstance(a, Tensor)), "cpu")
        with torch.autocast(device_type=device, enabled=False):
            return fn(*(up(a) for a in args), **{k: up(v) for k, v in kwargs.items()})

    return wrapper  # type: ignore[return-value]


def energy(x: Tensor) -> Tensor:
    """Sum of squares over the last axis: (..., T) → (...)."""
    return x.pow(2).sum(-1)


def snr_max_to_tau(snr_max: float | None) -> float:
    """Soft-threshold τ = 10^(−snr_max/10) (0 for no threshold): 30 dB → 1e-3."""
    return 0.0 if snr_max is None else 10.0 ** (-snr_max / 10.0)


@float32
def snr(est: Tensor, ref: Tensor, eps: float = 1e-8) -> Tensor:
    """Signal-to-noise ratio in dB: 10·log10(‖s‖² / ‖s − ŝ‖²).

    Args:
        est: estimate ŝ, (..., T).
        ref: reference s, broadcastable with `est`, (..., T).
        eps: added to both energies so silence gives finite values (0 dB for silent ŝ and s).
    Returns:
        (...) SNR in dB.
    """
    return 10 * torch.log10((energy(ref) + eps) / (energy(ref - est) + eps))


@float32
def si_snr(est: Tensor, ref: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale-invariant SNR in dB, both signals made zero-mean first.

    α = ⟨ŝ, s⟩ / ‖s‖²; SI-SNR = 10·log10(‖αs‖² / ‖ŝ − αs‖²).

    Args:
        est: estimate ŝ, (..., T).
        ref: reference s, (..., T).
    Returns:
        (...) SI-SNR in dB.
    """
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (energy(ref).unsqueeze(-1) + eps)
    target = alpha * ref
    return 10 * torch.log10((energy(target) + eps) / (energy(est - target) + eps))


@float32
def thresholded_snr(
    est: Tensor, ref: Tensor, snr_max: float | None = 30.0, eps: float = 1e-8
) -> Tensor:
    """Negative SNR soft-capped at `snr_max` dB — the MixIT / TUSS training loss.

    L(ŝ, s) = 10·log10(‖s − ŝ‖² + τ‖s‖² + ε) − 10·log10(‖s‖² + ε),  τ = 10^(−snr_max/10).

    The τ-term stops well-separated examples from dominating the gradient: the loss saturates
    at −snr_max. The second term is constant w.r.t. the model; it is kept so values read as dB
    (−loss is the SNR when far below the cap).

    Args:
        est: estimate ŝ, (..., T).
        ref: reference s, (..., T).
        snr_max: cap in dB; None for the plain negative SNR.
    Returns:
        (...) loss in dB, ≥ −snr_max.
    """
    tau = snr_max_to_tau(snr_max)
    ref_energy = energy(ref)
    return 10 * torch.log10(energy(ref - est) + tau * ref_energy + eps) - 10 * torch.log10(
        ref_energy + eps
    )


@float32
def zero_ref_loss(
    est: Tensor,
    mixture: Tensor,
    snr_max: float | None = 30.0,
    weight: float = 0.1,
    eps: float = 1e-7,
) -> Tensor:
    """Loss of an output whose reference is silent (TUSS): w₀·10·log10(‖ŝ‖² + τ‖m‖² + ε).

    Pushes the output's energy down until it is `snr_max` dB below the mixture m.
    FUSS' supervised baseline uses snr_max=20, weight=1.

    Args:
        est: estimate ŝ, (..., T).
        mixture: the input mixture m (sum of references), broadcastable to `est`, (..., T).
    Returns:
        (...) loss in dB.
    """
    tau = snr_max_to_tau(snr_max)
    return weight * 10 * torch.log10(energy(est) + tau * energy(mixture) + eps)


@float32
def tuss_loss(
    est: Tensor,
    ref: Tensor,
    mixture: Tensor,
    snr_max: float | None = 30.0,
    zero_ref_weight: float = 0.1,
    active_rms: float = 1e-8,
    eps: float = 1e-8,
) -> Tensor:
    """Per-source TUSS loss: `thresholded_snr` for active references, `zero_ref_loss` for silent.

    A reference is active when its RMS exceeds `active_rms`.

    Args:
        est: estimates, (..., T).
        ref: references, (..., T).
        mixture: the mixture, broadcastable to `est` (e.g. (B, 1, T) for est (B, N, T)).
    Returns:
        (...) loss in dB.
    """
    active = energy(ref) > active_rms**2 * ref.shape[-1]
    active_loss = thresholded_snr(est, ref, snr_max=snr_max, eps=eps)
    silent_loss = zero_ref_loss(est, mixture, snr_max=snr_max, weight=zero_ref_weight)
    return torch.where(active, active_loss, silent_loss)
