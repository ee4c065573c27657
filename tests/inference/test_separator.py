"""Separator: exact chunked overlap-add, resampling, channels, prompts and checkpoint errors."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch

from wildsep.inference import (
    CheckpointError,
    Separator,
    crossfade_window,
    load_model,
    num_chunks,
    output_names,
    overlap_add,
)
from wildsep.models import load_pretrained

from .fakes import RATE, Identity


def digest(x: np.ndarray | torch.Tensor) -> str:
    data = x.numpy() if isinstance(x, torch.Tensor) else x
    return hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()


# Segment 0.1 s = 800 samples at 8 kHz keeps the chunk counts high and the tests fast.
@pytest.mark.parametrize("length", [1, 799, 800, 801, 1600, 12_345], ids=lambda n: f"T{n}")
@pytest.mark.parametrize("shift", [0.05, 0.03, 0.07, 0.1], ids=lambda s: f"shift{s}")
def test_identity_model_reconstructs_input_exactly(identity: Identity, length, shift) -> None:
    audio = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    sep = Separator(identity, "cpu", segment=0.1, shift=shift, batch_size=4)
    out = sep.separate(audio, RATE)
    assert out.shape == (2, 2, length) and out.dtype == np.float32
    assert np.array_equal(out[0], audio), np.abs(out[0] - audio).max()  # bit-exact
    assert np.array_equal(out[1], -audio)


def test_overlap_add_matches_a_loop_over_chunks() -> None:
    """A position-dependent model (cumulative sum within each chunk), batched 3 chunks per call,
    equals windowed overlap-add written as a plain loop; and each call carries 3 × rows chunks."""
    segment, shift, length, rows = 100, 60, 1234, 2
    x = torch.randn(rows, length)
    calls = []

    def model(chunks: torch.Tensor) -> torch.Tensor:
        calls.append(chunks.shape[0])
        return torch.stack([chunks.cumsum(-1), chunks.flip(-1)], 1)

    out = overlap_add(x, model, segment, shift, chunks_per_call=3)
    n = num_chunks(length, segment, shift)
    padded = torch.nn.functional.pad(x, (0, (n - 1) * shift + segment - length)).double()
    window = crossfade_window(segment, shift)
    acc = torch.zeros(rows, 2, padded.shape[-1], dtype=torch.float64)
    weight = torch.zeros(padded.shape[-1], dtype=torch.float64)
    for k in range(n):
        span = slice(k * shift, k * shift + segment)
        chunk = padded[:, span]
        acc[..., span] += torch.stack([chunk.cumsum(-1), chunk.flip(-1)], 1) * window
        weight[span] += window
    expected = (acc / weight)[..., :length].float()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert calls == [3 * rows] * (n // 3) + [n % 3 * rows] * (n % 3 > 0)


@pytest.mark.parametrize(("segment", "shift"), [(800, 400), (801, 401), (800, 600), (800, 800)])
def test_crossfade_windows_sum_to_one(segment: int, shift: int) -> None:
    """For shift ≥ segment/2 (the TUSS 6 s / 3 s case) by construction; with more overlap the
    overlap-add divides by the summed windows (tested with shift 0.03 above)."""
    window = crossfade_window(segment, shift)
    total = torch.zeros(10 * segment, dtype=torch.float64)
    for start in range(0, total.numel() - segment + 1, shift):
        total[start : start + segment] += window
    interior = total[segment : -2 * segment]
    assert torch.allclose(interior, torch.ones_like(interior), atol=1e-12, rtol=0)
    assert (window > 0).all()


@pytest.mark.parametrize(("rate", "length"), [(44100, 44_101), (16000, 12_345), (11025, 999)])
def test_resampling_round_trip_keeps_length_and_passband(rate: int, length: int) -> None:
    t = np.arange(length) / rate
    audio = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.cos(2 * np.pi * 300 * t)])
    audio = audio.astype(np.float32)
    out = Separator(Identity(), "cpu", segment=0.5, shift=0.25).separate(audio, rate)
    assert out.shape == (2, 2, length)
    inner = slice(length // 10, -length // 10)  # the resampling filter's edges aside
    error = np.abs(out[0][:, inner] - audio[:, inner]).max()
    assert error < 1e-2, error


def test_inputs_are_never_modified_and_outputs_never_alias_them(identity: Identity) -> None:
    sep = Separator(identity, "cpu", segment=0.1, shift=0.05)
    rng = np.random.default_rng(0)
    for audio in (rng.standard_normal(500).astype(np.float32), torch.randn(2, 3000)):
        before = digest(audio)
        out = sep.separate(audio, RATE)
        out[...] = 7.0  # writing into the result must not reach the input
        assert digest(audio) == before
    tensor_in = torch.randn(1, 1000, dtype=torch.float64)
    before = digest(tensor_in)
    out = sep.separate(tensor_in, 16000)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert out.shape == (2, 1, 1000) and digest(tensor_in) == before


def test_tuss_gives_one_output_per_prompt(tuss_dir) -> None:
    sep = Separator.from_pretrained(tuss_dir, device="cpu")
    audio = np.random.default_rng(1).standard_normal((2, 4000)).astype(np.float32) * 0.1
    before = digest(audio)
    prompts = ["speech", "sfx", "speech"]
    out = sep.separate(audio, RATE, prompts)
    assert out.shape == (3, 2, 4000) and digest(audio) == before
    # Shorter than a segment: one pass over both channels, exactly the model's own output.
    with torch.inference_mode():
        direct = sep.model(torch.from_numpy(audio), prompts).transpose(0, 1).numpy()
    np.testing.assert_allclose(out, direct, rtol=0, atol=1e-6)
    assert sep.output_names(prompts) == ["speech_1", "sfx", "speech_2"]


def test_backbone_outputs_and_names(backbone_dir) -> None:
    sep = Separator.from_pretrained(backbone_dir, device="cpu")
    out = sep.separate(np.zeros(3000, np.float32) + 0.01, 22050)
    assert out.shape == (3, 1, 3000)
    assert sep.output_names(None) == ["output_0", "output_1", "output_2"]
    with pytest.raises(ValueError, match=r"unconditional.*do not pass prompts"):
        sep.separate(np.zeros(3000, np.float32), RATE, ["speech"])


def test_prompts_are_checked_before_any_audio_is_processed(tuss_dir) -> None:
    sep = Separator.from_pretrained(tuss_dir, device="cpu")
    calls = []
    sep.model.register_forward_hook(lambda *_: calls.append(1))
    broken = np.full(100, np.nan, np.float32)  # would fail only once audio is looked at
    with pytest.raises(ValueError, match=r"unknown prompts \['piano'\]; this model knows") as err:
        sep.separate(broken, RATE, ["speech", "piano"])
    assert "'musicbg'" in str(err.value)
    with pytest.raises(ValueError, match="needs prompts; it knows"):
        sep.separate(broken, RATE, None)
    assert calls == []


def test_unusable_audio_is_a_clear_error(identity: Identity) -> None:
    sep = Separator(identity, "cpu")
    with pytest.raises(ValueError, match="floating point"):
        sep.separate(np.zeros(100, np.int16), RATE)
    with pytest.raises(ValueError, match=r"looks like \(T, C\)"):
        sep.separate(np.zeros((100, 2), np.float32), RATE)
    with pytest.raises(ValueError, match="NaN"):
        sep.separate(np.array([0.0, np.inf], np.float32), RATE)
    with pytest.raises(ValueError, match="shift"):
        Separator(identity, "cpu", segment=3, shift=4)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Separator(identity, "cuda")


def test_output_names() -> None:
    assert output_names(["speech", "sfx", "speech", "speech"], 4) == [
        "speech_1",
        "sfx",
        "speech_2",
        "speech_3",
    ]
    assert output_names(None, 2) == ["output_0", "output_1"]


def test_checkpoint_errors_are_one_line(tmp_path, tuss_dir) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing")
    with pytest.raises(CheckpointError, match=r"no config\.json: not an exported wildsep model"):
        load_model(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"class": "Nope", "config": {}}))
    (bad / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="unknown model class 'Nope'") as err:
        load_model(bad)
    assert "\n" not in str(err.value)
    # A run directory with the exported model in model/ is accepted.
    run = tmp_path / "run"
    load_pretrained(tuss_dir).save_pretrained(run / "model")
    assert math.isclose(Separator.from_pretrained(run, device="cpu").sample_rate, RATE)
