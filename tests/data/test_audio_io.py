"""Partial decoding + resampling equals resampling the whole file, is anti-aliased, decodes
only the frames it needs, and handles channels and file edges."""

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from wildsep.data.audio_io import load_span, resample, select_channels


@pytest.fixture(params=["FLOAT", "PCM_16"])
def stereo_44k(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, np.ndarray]:
    """2 s of 44.1 kHz stereo noise, as float WAV and as 16-bit WAV (read through int16)."""
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((44100 * 2, 2))).astype(np.float32)
    x[:, 1] *= 0.25  # unequal channels, so a wrong down-mix shows
    path = tmp_path / "s.wav"
    sf.write(path, x, 44100, subtype=request.param)
    return path, sf.read(path, dtype="float32")[0]  # what the file holds after quantisation


def whole_file_reference(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """The whole signal (T,), with a second of silence on either side (what lies outside a file
    is silence), resampled in one call to soxr, independent of load_span's partial decoding."""
    out = soxr.resample(np.pad(x.astype(np.float64), orig_sr), orig_sr, target_sr, quality="HQ")
    return out[target_sr:]


@pytest.mark.parametrize("start", [0, 441, 441 * 7, 44100, 44100 * 2 - 441 * 20])
def test_span_equals_whole_file_resampling(stereo_44k: tuple[Path, np.ndarray], start: int) -> None:
    path, x = stereo_44k
    whole = whole_file_reference(x.mean(axis=1), 44100, 16000)
    span = load_span(path, start, 8000, 16000, channels="mono")
    offset = start * 160 // 441  # starts chosen on the common grid of both rates
    assert span.shape == (1, 8000) and span.dtype == np.float32
    np.testing.assert_allclose(span[0], whole[offset : offset + 8000], atol=2e-6)


@pytest.mark.parametrize(("orig_sr", "target_sr"), [(48000, 16000), (22050, 16000), (8000, 16000)])
@pytest.mark.parametrize("mode", ["first", "stereo"])
def test_span_equals_whole_file_resampling_at_other_rates(
    tmp_path: Path, orig_sr: int, target_sr: int, mode: str
) -> None:
    rng = np.random.default_rng(1)
    x = (0.2 * rng.standard_normal((orig_sr, 2))).astype(np.float32)
    x[orig_sr // 3 : orig_sr // 2] = 0  # a silent stretch inside the span
    sf.write(tmp_path / "a.wav", x, orig_sr, subtype="FLOAT")
    step = orig_sr // math.gcd(orig_sr, target_sr)  # input frames per grid point
    start, length = step * 3, target_sr // 2
    span = load_span(tmp_path / "a.wav", start, length, target_sr, channels=mode)
    offset = start * target_sr // orig_sr
    for c in range(span.shape[0]):
        whole = whole_file_reference(x[:, c], orig_sr, target_sr)
        np.testing.assert_allclose(span[c], whole[offset : offset + length], atol=2e-6)


def test_span_past_the_end_is_zero_padded(stereo_44k: tuple[Path, np.ndarray]) -> None:
    path, x = stereo_44k
    span = load_span(path, len(x) - 4410, 16000, 16000, channels="first")
    assert span.shape == (1, 16000)
    assert np.abs(span[0, 1700:]).max() < 1e-3 and np.abs(span[0, :1500]).max() > 0.1


def test_only_the_needed_frames_are_decoded(
    stereo_44k: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = stereo_44k
    requested: list[int] = []
    original = sf.SoundFile.read

    def counting_read(self, frames=-1, *args, **kwargs):
        requested.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    load_span(path, 20000, 1600, 16000)  # 0.1 s of a 2 s file
    assert len(requested) == 1 and 0 < requested[0] <= 4410 + 2 * 441


@pytest.mark.parametrize("frequency", [8500, 11000, 20000])
def test_resampling_rejects_tones_above_the_target_nyquist_by_50_db(frequency: int) -> None:
    sr = 44100
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * frequency * t).astype(np.float32)  # above the 8 kHz Nyquist
    out = resample(tone[None], sr, 16000)[0, 200:-200]
    assert 20 * np.log10(np.sqrt(np.mean(out**2)) / np.sqrt(0.5)) < -50


@pytest.mark.parametrize("frequency", [100, 3000, 7000])
def test_resampling_keeps_tones_below_90_percent_of_nyquist(frequency: int) -> None:
    sr = 44100
    t = np.arange(sr) / sr
    out = resample(np.sin(2 * np.pi * frequency * t)[None].astype(np.float32), sr, 16000)[0]
    expected = np.sin(2 * np.pi * frequency * np.arange(len(out)) / 16000)
    inner = slice(200, -200)
    assert np.abs(out[inner] - expected[inner]).max() < 1e-3


@pytest.mark.parametrize(
    ("orig_sr", "target_sr", "frames"), [(44100, 16000, 1000), (8000, 48000, 7)]
)
def test_resampled_length_is_the_ceiling_for_any_leading_shape(
    orig_sr: int, target_sr: int, frames: int
) -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, frames)).astype(np.float32)
    out = resample(x, orig_sr, target_sr)
    assert out.shape == (2, 3, math.ceil(frames * target_sr / orig_sr)) and out.dtype == np.float32
    np.testing.assert_allclose(out[1, 2], resample(x[1, 2][None], orig_sr, target_sr)[0])


def test_channel_modes() -> None:
    x = np.stack([np.ones(4), -np.ones(4) * 3]).astype(np.float32)
    np.testing.assert_array_equal(select_channels(x, "mono"), [[-1.0] * 4])
    np.testing.assert_array_equal(select_channels(x, "stereo"), x)
    np.testing.assert_array_equal(select_channels(x, "first"), x[:1])
    assert select_channels(x[:1], "stereo").shape == (2, 4)
    picks = {float(select_channels(x, "random", np.random.default_rng(s))[0, 0]) for s in range(20)}
    assert picks == {1.0, -3.0}
    with pytest.raises(ValueError, match="choose from"):
        select_channels(x, "left")
