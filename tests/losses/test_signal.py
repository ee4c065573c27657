import math

import numpy as np
import pytest
import torch

from losses import si_snr, snr, thresholded_snr, tuss_loss, zero_ref_loss

torch.manual_seed(0)


def np_energy(x):
    return float(np.sum(np.asarray(x, dtype=np.float64) ** 2))


def test_snr_matches_formula():
    ref, est = torch.randn(3, 500), torch.randn(3, 500)
    expected = [
        10 * math.log10(np_energy(r) / np_energy(r - e)) for r, e in zip(ref, est, strict=True)
    ]
    np.testing.assert_allclose(snr(est, ref).numpy(), expected, rtol=1e-5)


def test_si_snr_matches_formula_and_is_scale_invariant():
    ref, est = torch.randn(4, 800) + 0.3, torch.randn(4, 800) - 0.1
    expected = []
    for r, e in zip(ref.double().numpy(), est.double().numpy(), strict=True):
        r, e = r - r.mean(), e - e.mean()
        target = (e @ r) / (r @ r) * r
        expected.append(10 * math.log10((target @ target) / np_energy(e - target)))
    np.testing.assert_allclose(si_snr(est, ref).numpy(), expected, rtol=1e-4)
    torch.testing.assert_close(si_snr(7.5 * est, ref), si_snr(est, ref), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("snr_max", [30.0, 20.0, None])
def test_thresholded_snr_matches_formula(snr_max):
    ref, est = torch.randn(2, 3, 400), torch.randn(2, 3, 400)
    tau = 0.0 if snr_max is None else 10 ** (-snr_max / 10)
    res = ((ref - est) ** 2).sum(-1)
    energy = (ref**2).sum(-1)
    expected = 10 * torch.log10(res + tau * energy + 1e-8) - 10 * torch.log10(energy + 1e-8)
    torch.testing.assert_close(thresholded_snr(est, ref, snr_max=snr_max), expected)


def test_thresholded_snr_saturates_at_snr_max_and_equals_negative_snr_far_below():
    ref = torch.randn(1000)
    assert thresholded_snr(ref, ref, snr_max=30.0).item() == pytest.approx(-30.0, abs=1e-3)
    bad = ref + torch.randn(1000)  # ~0 dB, far below the cap
    assert thresholded_snr(bad, ref, snr_max=None).item() == pytest.approx(
        -snr(bad, ref).item(), abs=1e-5
    )
    assert thresholded_snr(bad, ref).item() == pytest.approx(-snr(bad, ref).item(), abs=0.01)


def test_zero_ref_loss_formula():
    est, mix = torch.randn(2, 3, 300), torch.randn(2, 1, 300)
    tau = 10 ** (-30 / 10)
    expected = 0.1 * 10 * torch.log10((est**2).sum(-1) + tau * (mix**2).sum(-1) + 1e-7)
    torch.testing.assert_close(zero_ref_loss(est, mix), expected)


def test_tuss_loss_selects_per_source_form():
    ref = torch.randn(2, 3, 300)
    ref[0, 1] = 0  # silent reference
    mix = ref.sum(1, keepdim=True)
    est = torch.randn(2, 3, 300)
    out = tuss_loss(est, ref, mix)
    torch.testing.assert_close(out[0, 1], zero_ref_loss(est[0, 1], mix[0, 0]))
    torch.testing.assert_close(out[1, 2], thresholded_snr(est[1, 2], ref[1, 2]))


ALL_LOSSES = {
    "snr": lambda e, r: snr(e, r),
    "si_snr": lambda e, r: si_snr(e, r),
    "thresholded_snr": lambda e, r: thresholded_snr(e, r),
    "thresholded_snr_uncapped": lambda e, r: thresholded_snr(e, r, snr_max=None),
    "zero_ref_loss": lambda e, r: zero_ref_loss(e, r),
    "tuss_loss": lambda e, r: tuss_loss(e, r, r.sum(0, keepdim=True)),
}


@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("case", ["silent_est", "silent_ref", "both_silent", "perfect"])
def test_finite_values_and_gradients_on_silence(name, case):
    ref = torch.zeros(2, 256) if case in ("silent_ref", "both_silent") else torch.randn(2, 256)
    est = torch.zeros(2, 256) if case in ("silent_est", "both_silent") else torch.randn(2, 256)
    if case == "perfect":
        est = ref.clone()
    est.requires_grad_(True)
    value = ALL_LOSSES[name](est, ref)
    value.sum().backward()
    assert torch.isfinite(value).all()
    assert torch.isfinite(est.grad).all()


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_float32_under_bf16_autocast(name):
    ref, est = torch.randn(2, 4000).bfloat16(), torch.randn(2, 4000).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = ALL_LOSSES[name](est, ref)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, ALL_LOSSES[name](est.float(), ref.float()))
