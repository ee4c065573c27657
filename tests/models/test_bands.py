"""Band layout, and the batched band-split layers against a plain loop of per-band layers."""

import pytest
import torch
from torch import nn

from wildsep.models import BandMaskDecoder, BandSplitEncoder, band_widths
from wildsep.models.sfc import SFCDecoder, SFCEncoder, band_distance_bias


def test_tuss_layout_has_61_bands_at_48k() -> None:
    widths = band_widths(48000, 2048)
    assert len(widths) == 61
    assert sum(widths) == 1025
    # BS-RoFormer steps: 2 bins/band to 1 kHz, 4 to 2 kHz, 12 to 4 kHz, 24 to 8 kHz, 48 to 16 kHz.
    assert widths[:57] == (2,) * 22 + (4,) * 11 + (12,) * 8 + (24,) * 8 + (48,) * 8
    assert widths[57:] == (66, 66, 66, 67)  # the rest, in four bands


@pytest.mark.parametrize("sample_rate", [8000, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize("n_fft", [64, 256, 512, 2048, 4096])
def test_layout_covers_every_bin_once(sample_rate: int, n_fft: int) -> None:
    widths = band_widths(sample_rate, n_fft)
    assert sum(widths) == n_fft // 2 + 1
    assert min(widths) >= 1
    assert len(widths) <= n_fft // 2 + 1


def _spec_bands(spec: torch.Tensor, widths: tuple[int, ...]) -> list[torch.Tensor]:
    """(B, T, F, 2) → per band (B, 2·w, T), channels ordered (bin, re/im)."""
    return [s.flatten(2).transpose(1, 2) for s in spec.split(widths, dim=2)]


def test_band_split_encoder_equals_per_band_layers() -> None:
    torch.manual_seed(0)
    widths = (2, 2, 4, 12, 5)
    enc = BandSplitEncoder(widths, dim=8)
    with torch.no_grad():
        enc.norm_weight.normal_()
        enc.norm_bias.normal_()
    spec = torch.randn(3, 7, sum(widths), 2) * torch.linspace(5, 0.1, sum(widths))[:, None]
    expected = []
    start = 0
    for q, (w, x) in enumerate(zip(widths, _spec_bands(spec, widths), strict=True)):
        norm, proj = nn.GroupNorm(1, 2 * w), nn.Conv1d(2 * w, 8, 1)
        bins = slice(start, start + w)
        with torch.no_grad():
            norm.weight.copy_(enc.norm_weight[bins].flatten())
            norm.bias.copy_(enc.norm_bias[bins].flatten())
            proj.weight.copy_(enc.weight[bins].flatten(0, 1).T[..., None])
            proj.bias.copy_(enc.bias[q])
        expected.append(proj(norm(x)).transpose(1, 2))  # (B, T, D)
        start += w
    torch.testing.assert_close(enc(spec), torch.stack(expected, 2), atol=1e-5, rtol=1e-5)


def test_band_mask_decoder_equals_per_band_layers() -> None:
    torch.manual_seed(0)
    widths, dim, hidden, outputs = (2, 3, 6, 1), 8, 12, 3
    dec = BandMaskDecoder(widths, dim, outputs, hidden, layers=2)
    with torch.no_grad():
        dec.norm_weight.normal_()
        dec.norm_bias.normal_()
    z = torch.randn(2, 5, len(widths), dim) * 3 + 1
    masks = []
    start = 0
    for q, w in enumerate(widths):
        norm = nn.GroupNorm(1, dim)
        mlp = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        last = nn.Linear(hidden, w * outputs * 4)
        bins = slice(start, start + w)
        with torch.no_grad():
            norm.weight.copy_(dec.norm_weight[q])
            norm.bias.copy_(dec.norm_bias[q])
            for i, layer in enumerate([mlp[0], mlp[2]]):
                layer.weight.copy_(dec.mlp_weights[i][q].T)
                layer.bias.copy_(dec.mlp_biases[i][q])
            last.weight.copy_(dec.weight[bins].permute(0, 2, 1).flatten(0, 1))
            last.bias.copy_(dec.bias[bins].flatten())
        h = norm(z[:, :, q].transpose(1, 2)).transpose(1, 2)  # GroupNorm over (D, T)
        out = last(mlp(h)).view(2, 5, w, outputs, 2, 2)  # (bin, output, value/gate, re/im)
        masks.append(out[..., 0, :] * torch.sigmoid(out[..., 1, :]))
        start += w
    expected = torch.cat(masks, 2).permute(0, 3, 1, 2, 4)  # (B, M, T, F, 2)
    torch.testing.assert_close(dec(z), expected, atol=1e-5, rtol=1e-5)


def test_parameter_count_has_no_padding_waste() -> None:
    widths, dim = (2, 2, 30), 4
    enc = BandSplitEncoder(widths, dim)
    per_band = sum(4 * w + 2 * w * dim + dim for w in widths)  # GroupNorm + 1×1 conv
    assert sum(p.numel() for p in enc.parameters()) == per_band


def test_sfc_bias_is_zero_inside_a_band_and_falls_off_outside() -> None:
    widths = (2, 4, 8)
    bias = band_distance_bias(widths, heads=4)
    assert bias.shape == (4, 3, 14)
    assert (bias[:, 1, 2:6] == 0).all()
    assert (bias[:, 1, :2] < 0).all() and (bias[:, 1, 6:] < 0).all()
    assert (bias[:, 1, 6:].diff(dim=-1) < 0).all()  # further away, more negative
    assert (bias[0] <= bias[-1]).all()  # the first head is the most local


def test_sfc_encoder_and_decoder_shapes() -> None:
    torch.manual_seed(0)
    widths = band_widths(8000, 128)
    enc, dec = SFCEncoder(widths, 16, 4), SFCDecoder(widths, 16, 4, n_outputs=3, hidden=32)
    z = enc(torch.randn(2, 9, 65, 2))
    assert z.shape == (2, 9, len(widths), 16)
    assert dec(z).shape == (2, 3, 9, 65, 2)
