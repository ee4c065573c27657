"""STFT front end: exact-length reconstruction, variance normalisation, float32 under autocast."""

import pytest
import torch

from wildsep.models import STFT


@pytest.mark.parametrize("window", ["sqrt_hann", "hann"])
@pytest.mark.parametrize(("n_fft", "hop"), [(256, 64), (64, 32), (2048, 512)])
@pytest.mark.parametrize("length", [1, 17, 255, 1001, 4097])
def test_round_trip_is_exact_for_any_length(window: str, n_fft: int, hop: int, length: int) -> None:
    torch.manual_seed(0)
    stft = STFT(n_fft, hop, window)
    x = torch.randn(2, length) * torch.tensor([[1.0], [1e-3]])
    spec, scale = stft(x)
    assert spec.shape == (2, length // hop + 1, n_fft // 2 + 1, 2)
    assert spec.dtype == torch.float32
    y = stft.inverse(spec, scale, length)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, atol=1e-5 * x.abs().max().item(), rtol=1e-4)


def test_normalisation_divides_by_std_and_inverse_restores_it() -> None:
    torch.manual_seed(0)
    stft = STFT(128, 32)
    x = torch.randn(3, 1000)
    spec, scale = stft(x)
    spec_loud, scale_loud = stft(x * 50)
    torch.testing.assert_close(scale, x.std(-1, correction=0), rtol=1e-5, atol=0)
    torch.testing.assert_close(scale_loud, 50 * scale, rtol=1e-5, atol=0)
    torch.testing.assert_close(spec_loud, spec, rtol=1e-4, atol=1e-5)
    # Leading axes of the spectrum (e.g. outputs) are restored with the per-example scale.
    many = stft.inverse(spec[:, None].expand(3, 4, *spec.shape[1:]), scale, 1000)
    torch.testing.assert_close(many, x[:, None].expand(3, 4, 1000), atol=1e-4, rtol=1e-4)
    raw, ones = STFT(128, 32, normalize=False)(x * 50)
    assert (ones == 1).all()
    torch.testing.assert_close(
        raw, spec_loud * scale_loud[:, None, None, None], rtol=1e-4, atol=1e-3
    )
    silent, _ = stft(torch.zeros(1, 500))
    assert torch.isfinite(silent).all()


def test_stays_float32_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    stft = STFT(256, 64)
    x = torch.randn(2, 3000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spec, scale = stft(x.bfloat16())
        y = stft.inverse(spec.bfloat16(), scale, 3000)
    assert spec.dtype == y.dtype == torch.float32
    torch.testing.assert_close(spec, stft(x.bfloat16().float())[0])


def test_rejects_unknown_window_and_non_batched_input() -> None:
    with pytest.raises(ValueError, match="sqrt_hann"):
        STFT(256, 64, "hamming")
    with pytest.raises(ValueError, match=r"\(B, T\), got \(1, 2, 300\)"):
        STFT(256, 64)(torch.randn(1, 2, 300))
