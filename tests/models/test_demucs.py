"""Demucs: layouts, exact lengths, parameter count, initialisation, normalisation, checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from wildsep.models import Demucs, DemucsConfig, PretrainedModel, from_preset, load_pretrained
from wildsep.models.demucs import valid_length

Small = Callable[..., PretrainedModel]


def test_stereo_and_mono_layouts(small: Small) -> None:
    stereo = small("demucs")  # 4 named stems, 2 channels
    assert stereo(torch.randn(3, 2, 1000)).shape == (3, 4, 2, 1000)
    mono = small("demucs", audio_channels=1, n_outputs=3, sources=())
    out = mono(torch.randn(3, 1000))
    assert out.shape == (3, 3, 1000) and out.dtype == torch.float32
    with pytest.raises(ValueError, match=r"takes \(B, 2, T\), got \(3, 1000\)"):
        stereo(torch.randn(3, 1000))
    with pytest.raises(ValueError, match=r"takes \(B, T\)"):
        mono(torch.randn(3, 2, 1000))


@pytest.mark.parametrize("length", [1, 7, 4095, 44100 + 13])
def test_output_length_equals_input_length(small: Small, length: int) -> None:
    model = small("demucs")
    assert model(torch.randn(2, 2, length)).shape == (2, 4, 2, length)


def _fits(padded: int, length: int, depth: int, kernel: int, stride: int, context: int) -> bool:
    """Whether valid convolutions on `padded` samples run and give ≥ `length` samples out."""
    encoded = [padded]
    for _ in range(depth):
        if encoded[-1] < kernel:
            return False
        encoded.append((encoded[-1] - kernel) // stride + 1)
    frames = encoded.pop()
    for skip in reversed([*encoded[1:], math.inf]):
        if frames < context or frames > skip:  # the skip must cover the decoder's frames
            return False
        frames = (frames - context) * stride + kernel
    return frames >= length


@pytest.mark.parametrize(
    ("depth", "kernel", "stride", "context"), [(3, 8, 4, 3), (2, 6, 2, 5), (2, 8, 4, 1)]
)
def test_valid_length_is_the_smallest_that_fits(depth, kernel, stride, context) -> None:
    for length in range(1, 1500):
        padded = valid_length(length, depth, kernel, stride, context)
        assert _fits(padded, length, depth, kernel, stride, context), length
        assert not any(
            _fits(p, length, depth, kernel, stride, context) for p in range(length, padded)
        ), length


def test_odd_geometries_keep_the_length() -> None:
    torch.manual_seed(0)
    for geometry in [dict(kernel=6, stride=2, context=5), dict(kernel=4, stride=4, context=1)]:
        model = Demucs(DemucsConfig(channels=4, depth=3, growth=1.5, **geometry))
        for length in (1, 333, 2048):
            assert model(torch.randn(1, 2, length)).shape == (1, 4, 2, length)


def test_outputs_are_aligned_with_the_input() -> None:
    """Without the LSTM the receptive field of output sample t is finite; averaged over one
    period of the total stride its centre is t itself (a one-sample misalignment of the
    padding or of a trim moves it by one)."""
    torch.manual_seed(0)
    config = DemucsConfig(
        audio_channels=1, n_outputs=1, channels=8, depth=2, lstm_layers=0, normalize=False
    )
    model = Demucs(config)
    length = 1001  # odd padding
    offsets = []
    for t in range(400, 400 + config.stride**config.depth):
        x = torch.randn(1, length, requires_grad=True)
        model(x)[0, 0, t].backward()
        support = x.grad[0].nonzero()[:, 0]
        offsets.append((support.min() + support.max()).item() / 2 - t)
    assert sum(offsets) / len(offsets) == pytest.approx(0, abs=0.05)


def _demucs_parameters(c: DemucsConfig) -> int:
    """The count written out from the layer list of the paper (reference.md §9)."""
    widths, k = [c.channels], c.kernel
    for _ in range(c.depth - 1):
        widths.append(int(c.growth * widths[-1]))
    total = 0
    for c_in, c_out in zip([c.audio_channels, *widths[:-1]], widths, strict=True):
        total += (c_in * c_out * k + c_out) + (c_out * 2 * c_out + 2 * c_out)  # conv, rewrite
    for c_out, w in zip([c.n_outputs * c.audio_channels, *widths[:-1]], widths, strict=True):
        total += (w * 2 * w * c.context + 2 * w) + (w * c_out * k + c_out)  # context, transposed
    h = widths[-1]
    for layer in range(c.lstm_layers):  # per direction: 4 gates × (input + hidden + 2 biases)
        total += 2 * 4 * h * ((h if layer == 0 else 2 * h) + h + 2)
    if c.lstm_layers:
        total += 2 * h * h + h  # Linear(2h → h)
    return total


def test_parameter_count_of_the_paper_size_within_2_percent() -> None:
    with torch.device("meta"):  # 1 GB of weights, not allocated
        model = from_preset("demucs")
    count = sum(p.numel() for p in model.parameters())
    assert count == _demucs_parameters(model.config)
    assert abs(count / 265.7e6 - 1) < 0.02, count
    with torch.device("meta"):
        wide = from_preset("demucs", channels=100)  # the first paper's width: 648.6M
    assert abs(sum(p.numel() for p in wide.parameters()) / 648.6e6 - 1) < 0.02
    small = Demucs(DemucsConfig(audio_channels=1, n_outputs=3, channels=6, growth=1.5, depth=4))
    assert sum(p.numel() for p in small.parameters()) == _demucs_parameters(small.config)


def test_convolutions_are_rescaled_at_initialisation() -> None:
    config = DemucsConfig(channels=4, depth=3)
    torch.manual_seed(0)
    plain = Demucs(dataclasses.replace(config, rescale=0.0))
    torch.manual_seed(0)
    model = Demucs(config)  # same draws, then rescaled
    convs = 0
    for (name, before), after in zip(plain.named_modules(), model.modules(), strict=True):
        if isinstance(before, nn.Conv1d | nn.ConvTranspose1d):
            convs += 1
            scale = math.sqrt(before.weight.std().item() / 0.1)
            torch.testing.assert_close(after.weight, before.weight / scale, msg=name)
            torch.testing.assert_close(after.bias, before.bias / scale, msg=name)
            expected_std = math.sqrt(before.weight.std().item() * 0.1)
            assert after.weight.std().item() == pytest.approx(expected_std, rel=1e-5), name
        elif isinstance(before, nn.LSTM | nn.Linear):  # only convolutions are rescaled
            for p, q in zip(before.parameters(), after.parameters(), strict=True):
                assert torch.equal(p, q)
    assert convs == 2 * 3 + 2 * 3


def test_normalisation_makes_outputs_follow_the_input_level(small: Small) -> None:
    model = small("demucs")
    x = torch.randn(3, 2, 3000) * torch.tensor([0.05, 1.0, 0.3])[:, None, None]
    x[1, :, :1000] = 0  # a silent stretch
    base = model(x)
    tol = dict(rtol=1e-3, atol=1e-4)  # the 1e-5 added to the standard deviation
    for gain, offset in [(0.5, 0.0), (3.0, 0.0), (2.0, 0.1)]:
        torch.testing.assert_close(model(gain * x + offset), gain * base + offset, **tol)
    assert model(torch.zeros(2, 2, 500)).abs().max() == 0  # silence in, silence out
    raw = small("demucs", normalize=False)
    assert not torch.allclose(raw(3 * x), 3 * raw(x), rtol=1e-3, atol=1e-4)


def test_stereo_model_mixes_information_across_channels(small: Small) -> None:
    model = small("demucs")
    x = torch.randn(3, 2, 2000)
    changed = x.clone()
    changed[:, 1] = torch.randn(3, 2000)  # new right channel, same left
    left, left_changed = model(x)[:, :, 0], model(changed)[:, :, 0]
    assert (left - left_changed).abs().amax(dim=(1, 2)).min() > 1e-4


def test_stereo_checkpoint_round_trip_is_exact(small: Small, tmp_path: Path) -> None:
    model = small("demucs").eval()
    x = torch.randn(2, 2, 1234)
    model.save_pretrained(tmp_path / "ckpt")
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert meta["class"] == "Demucs"
    assert meta["config"]["sources"] == ["drums", "bass", "vocals", "other"]
    loaded = load_pretrained(tmp_path / "ckpt")
    assert type(loaded) is Demucs and loaded.config == model.config
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="n_outputs"):
        from_preset("demucs", n_outputs=8)  # the preset names four stems
    assert from_preset("demucs-small", n_outputs=8, sources=(), channels=4).config.n_outputs == 8
    with pytest.raises(ValueError, match="kernel"):
        DemucsConfig(kernel=2, stride=4)
    with pytest.raises(ValueError, match="depth"):
        DemucsConfig(depth=0)


def test_tiny_model_fits_a_fixed_batch() -> None:
    """Sanity check of the whole path: 60 Adam steps on two mixtures of a low and a high tone
    (different levels) bring the L1 loss below a tenth of that of the best trivial answer,
    half the mixture for each source."""
    torch.manual_seed(0)
    t = torch.arange(1024) / 8000
    low = torch.tensor([[1.0], [0.3]]) * torch.sin(2 * math.pi * 110 * t)
    high = torch.tensor([[0.5], [0.8]]) * torch.sin(2 * math.pi * 1500 * t + 1.0)
    sources = torch.stack([low, high], 1)  # (B=2, S=2, T)
    mix = sources.sum(1)
    model = Demucs(
        DemucsConfig(audio_channels=1, n_outputs=2, channels=8, depth=3, sample_rate=8000)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    trivial = (mix[:, None] / 2 - sources).abs().mean().item()
    for _ in range(60):
        loss = (model(mix) - sources).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * trivial, (loss.item(), trivial)
