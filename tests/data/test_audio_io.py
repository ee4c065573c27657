"""Partial decoding + resampling equals resampling the whole file, is anti-aliased, decodes
only the frames it needs, and handles channels and file edges."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from wildsep.data.audio_io import load_span, resample, select_channels


@pytest.fixture
def stereo_44k(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((44100 * 2, 2))).astype(np.float32)
    path = tmp_path / "s.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    return path, x


@pytest.mark.parametrize("start", [0, 441 * 7, 44100])
def test_span_equals_whole_file_resampling(stereo_44k: tuple[Path, np.ndarray], start: int) -> None:
    path, x = stereo_44k
    whole = signal.resample_poly(x.mean(axis=1), 160, 441)  # 44.1 kHz → 16 kHz
    span = load_span(path, start, 8000, 16000, channels="mono")
    offset = start * 160 // 441  # starts chosen on the common grid of both rates
    assert span.shape == (1, 8000) and span.dtype == np.float32
    np.testing.assert_allclose(span[0], whole[offset : offset + 8000], atol=1e-6)


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


def test_resampling_is_anti_aliased() -> None:
    sr = 44100
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 11000 * t).astype(np.float32)  # above the 8 kHz target Nyquist
    out = resample(tone[None], sr, 16000)[0, 200:-200]
    assert 20 * np.log10(np.sqrt(np.mean(out**2)) / np.sqrt(0.5)) < -50


def test_channel_modes() -> None:
    x = np.stack([np.ones(4), -np.ones(4) * 3]).astype(np.float32)
    np.testing.assert_array_equal(select_channels(x, "mono"), [[-1.0] * 4])
    np.testing.assert_array_equal(select_channels(x, "first"), x[:1])
    assert select_channels(x[:1], "stereo").shape == (2, 4)
    picks = {float(select_channels(x, "random", np.random.default_rng(s))[0, 0]) for s in range(20)}
    assert picks == {1.0, -3.0}
    with pytest.raises(ValueError, match="choose from"):
        select_channels(x, "left")
