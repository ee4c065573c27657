"""Evaluation metrics for separated sources (per example, not a training hot path).

- `source_metrics`: SI-SNR, SI-SNRi, SNR and SNRi of matched estimate/reference pairs.
- `match_outputs`: which of M unconditional outputs answers each active reference (Hungarian on
  SI-SNR), as in FUSS-style evaluation of models with more outputs than sources.
- `separation_counts`: FUSS under/equal/over-separation — active estimates vs active references,
  an estimate being active when its power exceeds 1% of the weakest active reference's.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from losses import si_snr, snr

ACTIVE_RMS = 1e-8  # a reference is active above this RMS (silent slots are not scored)


def active_references(refs: Tensor) -> Tensor:
    """(..., T) → (...) bool: references with RMS above `ACTIVE_RMS`."""
    return refs.float().pow(2).mean(-1).sqrt() > ACTIVE_RMS


def source_metrics(est: Tensor, refs: Tensor, mixture: Tensor) -> dict[str, Tensor]:
    """Metrics of each estimate against its reference, and their improvement over the mixture.

    Args:
        est: (N, T) estimates, matched to `refs` row by row.
        refs: (N, T) references.
        mixture: (T,) the input mixture.
    Returns:
        {"si_snr", "si_snri", "snr", "snri"}: each (N,) in dB.
    """
    mix = mixture.expand_as(refs)
    out = {"si_snr": si_snr(est, refs), "snr": snr(est, refs)}
    out["si_snri"] = out["si_snr"] - si_snr(mix, refs)
    out["snri"] = out["snr"] - snr(mix, refs)
    return out


def match_outputs(est: Tensor, refs: Tensor) -> Tensor:
    """Assign each reference a distinct estimate maximising the total SI-SNR.

    Args:
        est: (M, T) outputs of an unconditional model.
        refs: (N, T) references, N ≤ M.
    Returns:
        (N,) long: the output chosen for each reference.
    """
    scores = si_snr(est.unsqueeze(0), refs.unsqueeze(1))  # (N, M)
    ref_index, est_index = linear_sum_assignment(scores.double().cpu().numpy(), maximize=True)
    chosen = torch.empty(refs.shape[0], dtype=torch.long)
    chosen[torch.as_tensor(ref_index)] = torch.as_tensor(est_index)
    return chosen


def separation_counts(est: Tensor, refs: Tensor) -> tuple[int, int]:
    """(active estimates, active references) of one example, FUSS-style.

    An estimate is active when its power exceeds 1% of the power of the weakest active
    reference; with no active reference, when it is above `ACTIVE_RMS`.
    """
    ref_power = refs.float().pow(2).mean(-1)
    active = active_references(refs)
    floor = ref_power[active].min() * 1e-2 if active.any() else torch.tensor(ACTIVE_RMS**2)
    return int((est.float().pow(2).mean(-1) > floor).sum()), int(active.sum())


def windowed_sdr(est: Tensor, refs: Tensor, window: int, filter_length: int = 512) -> Tensor:
    """BSS-eval (v4) SDR per window, as SiSEC/museval report MUSDB: the median over windows.

    SDR allows a `filter_length`-tap distortion filter of the reference (fast_bss_eval, the
    same definition as mir_eval/museval). Windows are consecutive and `window` samples long,
    a trailing partial window is dropped (a signal shorter than one window is one window);
    windows whose reference is silent are skipped, as museval does.

    Args:
        est: (N, T) estimates matched to `refs` row by row.
        refs: (N, T).
    Returns:
        (N,) float64 median SDR in dB; NaN where every window's reference is silent.
    """
    try:  # an optional dependency: only the benchmarks that report SDR need it
        import fast_bss_eval
    except ImportError:
        raise ImportError("BSS-eval SDR needs fast_bss_eval: pip install 'wildsep[eval]'") from None

    length = est.shape[-1]
    window = min(window, length)
    count = length // window
    shape = (est.shape[0] * count, 1, window)
    est_w = est[..., : count * window].double().reshape(shape)
    ref_w = refs[..., : count * window].double().reshape(shape)
    active = ref_w.pow(2).mean(-1).sqrt().flatten() > ACTIVE_RMS
    sdr = torch.full((est.shape[0] * count,), float("nan"), dtype=torch.float64)
    if active.any():  # a silent reference has no projection: singular, so never passed
        taps = min(filter_length, window)
        sdr[active] = fast_bss_eval.sdr(ref_w[active], est_w[active], filter_length=taps)[:, 0]
    return sdr.reshape(est.shape[0], count).nanmedian(-1).values
