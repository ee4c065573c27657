"""Long files as a stream: blocks through soxr's stream resampler and the streaming overlap-add
give today's whole-file separation (a loop over chunks written out here), the CLI writes as it
reads, and its peak memory does not grow with a file's length."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wildsep.cli import separate_file
from wildsep.data.audio_io import StreamingResampler, resample
from wildsep.inference import Separator, StreamingOverlapAdd, crossfade_window, overlap_add

from .fakes import RATE, Identity, StereoSwap

ROOT = Path(__file__).resolve().parents[2]


def random_blocks(audio: np.ndarray, seed: int, largest: int = 20_000) -> list[np.ndarray]:
    """`audio` (C, T) cut at random points into blocks of 1 … `largest` samples."""
    rng = np.random.default_rng(seed)
    blocks, start = [], 0
    while start < audio.shape[-1]:
        size = int(rng.integers(1, largest)) if len(blocks) != 1 else 1  # one 1-sample block
        blocks.append(audio[:, start : start + size])
        start += size
    return blocks


def test_every_block_is_resampled_as_the_whole_signal_is() -> None:
    rng = np.random.default_rng(0)
    for orig, target, channels in [(44100, 8000, 2), (8000, 44100, 1), (16000, 48000, 5)]:
        x = rng.standard_normal((channels, 3 * orig + 17)).astype(np.float32)
        stream = StreamingResampler(orig, target, channels)
        parts = [stream.push(block) for block in random_blocks(x, orig)] + [stream.finish()]
        assert np.array_equal(np.concatenate(parts, -1), resample(x, orig, target))
    same = StreamingResampler(8000, 8000, 1)
    assert np.array_equal(same.push(x[:1, :10]), x[:1, :10]) and same.finish().shape == (1, 0)


@pytest.mark.parametrize("length", [1, 100, 101, 1234], ids=lambda n: f"T{n}")
def test_streaming_overlap_add_in_blocks_equals_one_call(length: int) -> None:
    """Bit for bit, for signals shorter than, as long as and longer than a segment, fed in
    random blocks; a position-dependent fake (cumulative sum within each chunk)."""
    segment, shift, rows = 100, 60, 2
    x = torch.randn(rows, length)

    def fn(chunks: torch.Tensor) -> torch.Tensor:
        return torch.stack([chunks.cumsum(-1), chunks.flip(-1)], 1)

    whole = overlap_add(x, fn, segment, shift, chunks_per_call=3)
    stream = StreamingOverlapAdd(fn, segment, shift, chunks_per_call=3)
    parts = []
    for block in random_blocks(x.numpy(), length, largest=150):
        parts += stream.push(torch.from_numpy(block))
    parts += stream.finish()
    assert torch.equal(torch.cat(parts, -1), whole)


def whole_file_reference(
    sep: Separator, audio: np.ndarray, rate: int, prompts: list[str]
) -> np.ndarray:
    """Today's whole-file separation written out: one-shot resampling to the model's rate, each
    chunk of every channel through the model in a loop (last chunk zero-padded), the windowed
    outputs summed and divided by the summed windows, one-shot resampling back, cut to length."""
    x = resample(audio, rate, sep.sample_rate)
    channels, length = x.shape
    segment, shift = sep.segment, sep.shift
    n = 1 + math.ceil((length - segment) / shift)
    padded = np.pad(x, ((0, 0), (0, (n - 1) * shift + segment - length)))
    window = crossfade_window(segment, shift).numpy()
    acc = np.zeros((channels, len(prompts), padded.shape[-1]))
    weight = np.zeros(padded.shape[-1])
    for j in range(n):
        span = slice(j * shift, j * shift + segment)
        with torch.inference_mode():
            y = sep.model(torch.from_numpy(padded[:, span]), prompts).double().numpy()
        acc[..., span] += y * window
        weight[span] += window
    y = (acc / weight)[..., :length].astype(np.float32).transpose(1, 0, 2)  # (K, C, T_model)
    back = resample(y, sep.sample_rate, rate)[..., : audio.shape[-1]]
    return np.pad(back, ((0, 0), (0, 0), (0, audio.shape[-1] - back.shape[-1])))


@pytest.mark.parametrize("channels", [2, 1], ids=["stereo", "mono"])
def test_stream_equals_the_whole_file_separation(tuss_dir: Path, channels: int) -> None:
    """3 s at 44.1 kHz (channels at different levels, a silent second) through a tiny TUSS in
    0.5 s chunks every 0.25 s, 3 chunks per forward pass, fed in random blocks."""
    rate, seconds = 44100, 3.0
    rng = np.random.default_rng(channels)
    audio = rng.standard_normal((channels, int(seconds * rate))).astype(np.float32)
    audio *= np.array([[0.5], [0.05]][:channels], dtype=np.float32)
    audio[:, rate : 2 * rate] = 0.0
    sep = Separator.from_pretrained(
        tuss_dir, device="cpu", segment=0.5, shift=0.25, batch_size=3 * channels
    )
    calls: list[int] = []
    sep.model.register_forward_hook(lambda _m, args, _o: calls.append(args[0].shape[0]))
    prompts = ["speech", "sfx", "speech"]
    out = list(sep.separate_stream(random_blocks(audio, channels), rate, prompts))

    assert len(out) >= 3 and calls[0] == 3 * channels  # streamed, 3 chunks a pass
    got = np.concatenate(out, -1)
    assert got.shape == (3, channels, audio.shape[-1]) and got.dtype == np.float32
    expected = whole_file_reference(sep, audio, rate, prompts)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6 * np.abs(expected).max())
    assert np.array_equal(got, sep.separate(audio, rate, prompts))  # the same pipeline


def test_stream_keeps_shifts_and_mono_into_a_stereo_model_exact() -> None:
    """Test-time shifts (passes delayed and averaged) and a mono file duplicated into a stereo
    model: the stream equals `separate` in one block, bit for bit."""
    audio = np.random.default_rng(3).standard_normal((1, 20_000)).astype(np.float32)
    sep = Separator(StereoSwap(), "cpu", segment=0.1, shift=0.05, shifts=3, max_shift=0.02)
    assert len(set(sep.shift_offsets)) > 1
    got = np.concatenate(list(sep.separate_stream(random_blocks(audio, 3, 3000), 11025)), -1)
    assert np.array_equal(got, sep.separate(audio, 11025))


def test_the_stream_reads_lazily_and_refuses_a_change_of_channels(identity: Identity) -> None:
    sep = Separator(identity, "cpu", segment=0.1, shift=0.05)
    consumed = []

    def blocks() -> Iterator[np.ndarray]:
        for i in range(100):
            consumed.append(i)
            yield np.full((2, 400), 0.1, np.float32)

    stream = sep.separate_stream(blocks(), RATE)
    next(stream)
    assert len(consumed) < 5  # outputs come out long before the input ends
    bad = [np.zeros((2, 1000), np.float32), np.zeros((1, 1000), np.float32)]
    with pytest.raises(ValueError, match="a block has 1 channels, the recording 2"):
        list(sep.separate_stream(bad, RATE))
    with pytest.raises(ValueError, match="audio is empty"):
        list(sep.separate_stream([np.zeros((1, 0), np.float32)], RATE))


class Seconds:
    """A stand-in for the tqdm bar: sums what it is advanced by."""

    def __init__(self) -> None:
        self.n = 0.0

    def update(self, seconds: float) -> None:
        self.n += seconds


def test_separate_file_writes_exact_outputs_and_counts_seconds(tmp_path, identity) -> None:
    rate, frames = 22050, 50_000
    audio = 0.1 * np.random.default_rng(0).standard_normal((frames, 2)).astype(np.float32)
    sf.write(str(tmp_path / "in.wav"), audio, rate, subtype="FLOAT")
    sep = Separator(identity, "cpu", segment=0.1, shift=0.05)
    progress = Seconds()
    separate_file(sep, tmp_path / "in.wav", tmp_path / "out", ["a", "b"], None, progress)
    written = sf.read(str(tmp_path / "out" / "a.wav"), dtype="float32")[0]
    np.testing.assert_array_equal(written, sep.separate(audio.T, rate)[0].T)
    assert progress.n == pytest.approx(frames / rate)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav", "b.wav"]


# Runs the real `wildsep separate` with the Identity fake as the model (the fake costs nothing,
# so only the streaming's own memory shows) and prints the process's peak resident set in KiB.
PEAK_RSS_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    from wildsep import cli
    from tests.inference.fakes import Identity

    def fake(cls, directory, device=None, **kwargs):
        return cls(Identity(), "cpu", **kwargs)

    cli.Separator.from_pretrained = classmethod(fake)
    status = cli.main(["separate", sys.argv[1], "--model", "fake", "--out", sys.argv[2]])
    print(status, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


def write_long_wav(path: Path, seconds: float, rate: int = 44100) -> None:
    """Noise, 16-bit stereo, written a minute at a time."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", rate, 2, subtype="PCM_16") as f:
        for start in range(0, int(seconds), 60):
            frames = int(min(60, seconds - start) * rate)
            f.write(0.1 * rng.standard_normal((frames, 2)).astype(np.float32))


def test_peak_memory_does_not_grow_with_the_files_length(tmp_path) -> None:
    """1 and 6 minutes of 44.1 kHz stereo: whole-file separation would need ~0.5 GB more for the
    longer one (input and two stereo float outputs, at two rates); the stream needs the same."""
    peaks = {}
    for minutes in (1, 6):
        source = tmp_path / f"long_{minutes}.wav"
        write_long_wav(source, 60 * minutes)
        result = subprocess.run(
            [sys.executable, "-c", PEAK_RSS_SCRIPT, str(source), str(tmp_path / "out")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        status, peak_kib = map(int, result.stdout.split()[-2:])
        assert status == 0, result.stderr
        written = sf.info(str(tmp_path / "out" / source.stem / "output_1.wav"))
        assert written.frames == 60 * minutes * 44100 and written.channels == 2
        peaks[minutes] = peak_kib / 1024
        source.unlink()
    growth = peaks[6] - peaks[1]
    whole_file_extra = 5 * 60 * 44100 * 2 * 4 * 3 / 2**20  # input + 2 outputs, float32: 303 MiB
    assert growth < 0.1 * whole_file_extra, peaks
