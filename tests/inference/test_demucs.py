"""Separating with multichannel models (Demucs): native stereo, mono files, test-time shifts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from wildsep.cli import main
from wildsep.inference import Separator, shift_offsets
from wildsep.models import load_pretrained

from .fakes import RATE, Identity, StereoSwap

STEMS = ["drums", "bass", "vocals", "other"]


def _stereo(length: int, seed: int = 0) -> np.ndarray:
    """(2, T) with different levels per channel and a silent stretch."""
    audio = np.random.default_rng(seed).standard_normal((2, length)).astype(np.float32)
    audio *= np.array([[0.3], [0.05]], np.float32)
    audio[:, length // 3 : length // 2] = 0
    return audio


@pytest.mark.parametrize("length", [700, 800, 5_001], ids=lambda n: f"T{n}")
def test_stereo_model_sees_both_channels_of_every_chunk(length: int) -> None:
    """The fake swaps left and right; that comes back exactly only if every call pairs the
    two channels of the same chunk (5001 samples = 10 chunks of 0.1 s every 0.05 s)."""
    model = StereoSwap()
    audio = _stereo(length)
    out = Separator(model, "cpu", segment=0.1, shift=0.05, batch_size=6).separate(audio, RATE)
    assert out.shape == (2, 2, length)
    np.testing.assert_array_equal(out[0], audio)
    np.testing.assert_array_equal(out[1], audio[::-1])
    assert all(len(shape) == 3 and shape[1] == 2 for shape in model.shapes)
    assert max(shape[0] for shape in model.shapes) == (3 if length > 800 else 1)  # 6 // 2 chunks


def test_mono_file_through_a_stereo_model_is_duplicated_and_averaged(demucs_dir: Path) -> None:
    sep = Separator.from_pretrained(demucs_dir, device="cpu")
    mono = _stereo(3000)[:1]
    out = sep.separate(mono, RATE)
    assert out.shape == (4, 1, 3000)
    with torch.inference_mode():
        both = sep.model(torch.from_numpy(np.repeat(mono, 2, axis=0))[None])[0]  # (4, 2, T)
    np.testing.assert_allclose(out[:, 0], both.mean(1).numpy(), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"separates 2-channel audio .* got 3 channels"):
        sep.separate(np.zeros((3, 100), np.float32), RATE)


def test_stereo_demucs_equals_one_direct_call_and_names_its_stems(demucs_dir: Path) -> None:
    sep = Separator.from_pretrained(demucs_dir, device="cpu")
    assert sep.output_names(None) == STEMS
    audio = _stereo(4000)
    out = sep.separate(audio, RATE)  # 0.5 s: shorter than a segment, one forward pass
    with torch.inference_mode():
        direct = sep.model(torch.from_numpy(audio)[None])[0].numpy()  # (4, 2, T)
    np.testing.assert_allclose(out, direct, rtol=0, atol=1e-6)
    long = _stereo(9_001, seed=1)  # chunked: 0.4 s segments every 0.2 s
    chunked = Separator.from_pretrained(demucs_dir, device="cpu", segment=0.4, shift=0.2)
    result = chunked.separate(long, 16000)
    assert result.shape == (4, 2, 9_001) and np.isfinite(result).all()


def test_shifts_average_the_separations_of_delayed_copies(demucs_dir: Path) -> None:
    model = load_pretrained(demucs_dir).eval()
    sep = Separator(model, "cpu", shifts=3, max_shift=0.05, seed=7)
    audio = _stereo(2000)
    offsets = sep.shift_offsets
    assert offsets == shift_offsets(3, 400, seed=7) and len(set(offsets)) == 3
    assert all(0 <= o <= 400 for o in offsets)
    x = torch.from_numpy(audio)
    separations = []
    with torch.inference_mode():
        for offset in offsets:
            delayed = F.pad(x, (offset, max(offsets) - offset))
            separations.append(model(delayed[None])[0][..., offset : offset + 2000])
    expected = torch.stack(separations).mean(0).numpy()
    np.testing.assert_allclose(sep.separate(audio, RATE), expected, rtol=0, atol=1e-7)
    # The model is not shift-invariant, so the average is not any single separation.
    assert (separations[0] - separations[1]).abs().max() > 1e-5
    plain = Separator(model, "cpu").separate(audio, RATE)
    assert np.abs(plain - expected).max() > 1e-5


def test_shifts_keep_identity_exact_through_chunking() -> None:
    """An identity model gives its input back whatever the delays and chunk boundaries."""
    audio = _stereo(12_345, seed=2)
    sep = Separator(Identity(), "cpu", segment=0.1, shift=0.05, shifts=4, max_shift=0.5)
    out = sep.separate(audio, RATE)
    np.testing.assert_allclose(out[0], audio, rtol=0, atol=1e-7)
    np.testing.assert_allclose(out[1], -audio, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="shifts ≥ 0"):
        Separator(Identity(), "cpu", shifts=-1)


def test_cli_separates_stereo_with_demucs_and_shifts(tmp_path: Path, demucs_dir: Path) -> None:
    song = tmp_path / "song.wav"
    sf.write(str(song), _stereo(22_050).T, 44100, subtype="FLOAT")
    out = tmp_path / "out"
    args = ["separate", str(song), "--model", str(demucs_dir), "--out", str(out), "--shifts", "2"]
    assert main(args) == 0
    assert sorted(p.name for p in (out / "song").iterdir()) == sorted(f"{s}.wav" for s in STEMS)
    info = sf.info(str(out / "song" / "vocals.wav"))
    assert (info.samplerate, info.frames, info.channels) == (44100, 22_050, 2)
