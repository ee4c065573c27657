"""Separate audio of any length, sample rate and channel count with a trained model.

`Separator` wraps a loaded model (a prompted `TUSS`, or an unconditional `Backbone` /
`TFLocoformer` / `Demucs`) and takes care of everything between a user's array and the model's
``(B, T) → (B, K, T)`` forward (``(B, C, T) → (B, K, C, T)`` for multichannel models):

- resampling to the model's rate and back (anti-aliased with soxr, `wildsep.data.resample`),
  with the output cut to exactly the input's length;
- for mono models, channels separated independently, as one batch; a model whose config has
  `audio_channels` = C ≥ 2 (a stereo Demucs) sees all C channels of a chunk together, and a
  mono recording is duplicated to C channels, its C outputs averaged back to one;
- optional test-time shifts (Demucs's "shifts"): the separation averaged over K copies of the
  input delayed by random offsets of up to `max_shift` seconds (seeded);
- inputs longer than one segment split into overlapping chunks (6 s every 3 s by default, as
  in TUSS), separated in batches and overlap-added with a crossfade window normalised so that
  the windows covering any sample sum to exactly one: a model that returns its input gives
  back the input bit for bit;
- prompts checked against the model's prompt table before any audio is touched;
- recordings too long to hold separated as a stream (`Separator.separate_stream`): blocks in,
  output blocks out as soon as they are final, exactly what `separate` gives on the whole.

```python
sep = Separator.from_pretrained("ckpt/")               # GPU when available
stems = sep.separate(audio, 44100, ["speech", "sfx"])  # audio (C, T) → (2, C, T)
```
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from wildsep.data.audio_io import StreamingResampler
from wildsep.models.pretrained import CheckpointError as CheckpointError
from wildsep.models.pretrained import load_pretrained

log = logging.getLogger(__name__)

DEFAULT_SEGMENT = 6.0  # seconds; TUSS chunked inference (reference.md §7)
DEFAULT_SHIFT = 3.0
DEFAULT_BATCH_SIZE = 4  # model inputs (chunks × channels) per forward pass
DEFAULT_MAX_SHIFT = 0.5  # seconds; Demucs test-time shifts (reference.md §9)

Audio = np.ndarray | Tensor
ChunkFn = Callable[[Tensor], Tensor]


# ---------------------------------------------------------------------------------------------
# Checkpoints


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model exported at `path` (a model folder or a run directory) on `device`.

    The same checks as everywhere a model is loaded (`wildsep.models.load_pretrained`): every
    way a folder can fail to load is a one-line `CheckpointError`.
    """
    return load_pretrained(path, device=device)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------------------------------
# Chunked overlap-add


def crossfade_window(segment: int, shift: int) -> Tensor:
    """(segment,) float64 window: sin² fade-in over the first `segment − shift` samples, flat 1,
    then the mirrored fade-out.

    For shift ≥ segment/2 the fade-out of one chunk lies exactly on the fade-in of the next and
    sin² + cos² = 1, so overlapped windows sum to one. Samples sit at half-integer phases, so
    no weight is exactly zero (a chunk alone at the start of a signal still counts). For
    shift < segment/2 the fades are capped at half a segment and `overlap_add` normalises by
    the summed windows, which it always does anyway.
    """
    if not 0 < shift <= segment:
        raise ValueError(f"need 0 < shift ≤ segment, got shift {shift}, segment {segment}")
    ramp = min(segment - shift, segment // 2)
    window = torch.ones(segment, dtype=torch.float64)
    if ramp > 0:
        phase = (torch.arange(ramp, dtype=torch.float64) + 0.5) / ramp
        fade = torch.sin(0.5 * math.pi * phase) ** 2
        window[:ramp] = fade
        window[segment - ramp :] = fade.flip(0)
    return window


def num_chunks(length: int, segment: int, shift: int) -> int:
    """Chunks of `segment` samples every `shift` samples needed to cover `length` samples."""
    return 1 if length <= segment else 1 + math.ceil((length - segment) / shift)


def _fold(frames: Tensor, shift: int, span: int) -> Tensor:
    """Overlap-add of g frames: (R, L, g) → (R, span), frame j starting at sample j·shift."""
    out = F.fold(frames, output_size=(1, span), kernel_size=(1, frames.shape[1]), stride=(1, shift))
    return out.reshape(frames.shape[0], span)


class StreamingOverlapAdd:
    """`overlap_add` on a signal that arrives in blocks: output samples come out as soon as no
    later chunk overlaps them, so memory is one call's chunks, whatever the signal's length.

    Chunks are grouped `chunks_per_call` at a time from the first, exactly as `overlap_add`
    groups them, and accumulated in float64 the same way, so the concatenated outputs are
    `overlap_add` of the concatenated input, bit for bit (`overlap_add` is this class fed once).
    Whether the signal is longer than one segment (chunked) or not (one call on the whole
    signal, unpadded) is known once it has more than `segment` samples or has ended.
    """

    def __init__(self, fn: ChunkFn, segment: int, shift: int, chunks_per_call: int = 1) -> None:
        self.fn, self.segment, self.shift = fn, segment, shift
        self.chunks_per_call = chunks_per_call
        self.window = crossfade_window(segment, shift)
        self.received = 0  # input samples pushed so far
        self.emitted = 0  # output samples returned so far
        self._next_chunk = 0
        self._buffer: Tensor | None = None  # (R, t) input from sample `self._offset` on
        self._offset = 0
        self._carry: tuple[Tensor, Tensor] | None = None  # (sum of weighted outputs, weights)

    def push(self, x: Tensor) -> list[Tensor]:
        """Add (R, t) input samples; returns the (R, K, t') outputs now final (maybe none)."""
        self._buffer = x if self._buffer is None else torch.cat([self._buffer, x], -1)
        self.received += x.shape[-1]
        out = []
        while True:
            last = self._next_chunk + self.chunks_per_call
            # A group runs once its last chunk is complete and the signal is surely chunked.
            if self.received <= self.segment or self.received < (last - 1) * self.shift + (
                self.segment
            ):
                return out
            out.append(self._run_group(last, None))

    def finish(self) -> list[Tensor]:
        """The input has ended: the remaining (R, K, t') outputs, up to `received` samples."""
        length = self.received
        if self._buffer is None or length == 0:
            raise ValueError("audio is empty")
        if length <= self.segment:  # clone: the result must never alias the caller's audio
            self.emitted = length
            return [self.fn(self._buffer.clone())]
        n = num_chunks(length, self.segment, self.shift)
        needed = (n - 1) * self.shift + self.segment - self._offset
        self._buffer = F.pad(self._buffer, (0, needed - self._buffer.shape[-1]))
        out = []
        while self._next_chunk < n:
            out.append(self._run_group(min(n, self._next_chunk + self.chunks_per_call), length))
        if self._carry is not None and self.emitted < length:  # a tail no chunk follows
            acc, weight = self._carry
            rest = length - self.emitted
            rows = self._buffer.shape[0]
            out.append((acc[:, :rest] / weight[:rest]).reshape(rows, -1, rest).float())
            self.emitted = length
        return out

    def _run_group(self, last: int, length: int | None) -> Tensor:
        """Chunks `_next_chunk` … `last − 1` through `fn`; returns the outputs they finalise.
        `length` is the signal's length once it has ended (None while streaming)."""
        first, segment, shift, window = self._next_chunk, self.segment, self.shift, self.window
        assert self._buffer is not None
        rows = self._buffer.shape[0]
        g, start = last - first, first * shift
        span = (g - 1) * shift + segment
        local = start - self._offset
        chunks = self._buffer[:, local : local + span].unfold(-1, segment, shift)  # (R, g, L)
        y = self.fn(chunks.transpose(0, 1).reshape(g * rows, segment))  # (g·R, K, L)
        k = y.shape[1]
        y = y.reshape(g, rows, k, segment).double() * window
        acc = _fold(y.permute(1, 2, 3, 0).reshape(rows * k, segment, g), shift, span)
        weight = _fold(window.reshape(1, segment, 1).expand(1, segment, g), shift, span)[0]
        if self._carry is not None:  # the tail of the previous call's last chunk overlaps
            acc[:, : self._carry[1].numel()] += self._carry[0]
            weight[: self._carry[1].numel()] += self._carry[1]
        # Samples before the next call's first chunk get no more contributions: final.
        final_group = length is not None and last == num_chunks(length, segment, shift)
        done = span if final_group else last * shift - start
        end = start + done if length is None else min(start + done, length)
        final = (acc[:, : end - start] / weight[: end - start]).reshape(rows, k, -1).float()
        self._carry = None if final_group else (acc[:, done:], weight[done:])
        self._next_chunk, self.emitted = last, end
        self._buffer = self._buffer[:, last * shift - self._offset :]
        self._offset = last * shift
        return final


def overlap_add(
    x: Tensor, fn: ChunkFn, segment: int, shift: int, chunks_per_call: int = 1
) -> Tensor:
    """Apply `fn` to overlapping chunks of `x` and overlap-add the results.

    Args:
        x: (R, T) float32 rows (channels), on the CPU.
        fn: maps a batch of chunks (b, L) to (b, K, L); called with `chunks_per_call` chunks
            of every row at a time (b = chunks × R), chunk-major: input j·R + r is row r of
            chunk j, so the R rows of one chunk are consecutive (a multichannel model can
            regroup them). A row no longer than `segment` is one chunk: fn gets x itself.
        segment: chunk length L in samples. A row no longer than this is passed to `fn` whole,
            without padding (exactly a direct call of the model).
        shift: hop between chunk starts, 0 < shift ≤ segment. The last chunk is zero-padded.
        chunks_per_call: chunks (per row) per call of `fn`.
    Returns:
        (R, K, T) float32. Accumulation runs in float64 over a sliding span, so memory beyond
        the output is bounded by one call's chunks, and identity models reconstruct exactly.
        `StreamingOverlapAdd` does the same on a signal that arrives in blocks.
    """
    stream = StreamingOverlapAdd(fn, segment, shift, chunks_per_call)
    parts = stream.push(x) + stream.finish()
    if len(parts) == 1:
        return parts[0]
    out = torch.empty(x.shape[0], parts[0].shape[1], x.shape[-1], dtype=torch.float32)
    position = 0
    for part in parts:
        out[..., position : position + part.shape[-1]] = part
        position += part.shape[-1]
    return out


# ---------------------------------------------------------------------------------------------
# Separator


def is_prompted(model: nn.Module) -> bool:
    """Whether `model` takes prompts (its config names a prompt table, as TUSS's does)."""
    return hasattr(model.config, "prompts")


def model_channels(model: nn.Module) -> int:
    """Audio channels `model` separates together: its config's `audio_channels` (a stereo
    Demucs: 2, forward (B, 2, T) → (B, K, 2, T)), else 1 (forward (B, T) → (B, K, T))."""
    return int(getattr(model.config, "audio_channels", 1))


def shift_offsets(shifts: int, max_shift: int, seed: int = 0) -> list[int]:
    """The delays (in samples, each in [0, max_shift]) of `shifts` test-time shifted copies."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, max_shift, size=shifts, endpoint=True).tolist()


def output_names(prompts: Sequence[str] | None, n_outputs: int) -> list[str]:
    """File-friendly names of a separation's outputs.

    Prompts name their outputs; a prompt given more than once is numbered from 1
    (`speech_1`, `speech_2`). Unconditional outputs are `output_0` … `output_{M−1}`.
    """
    if prompts is None:
        return [f"output_{i}" for i in range(n_outputs)]
    seen: dict[str, int] = {}
    names = []
    for prompt in prompts:
        seen[prompt] = seen.get(prompt, 0) + 1
        repeated = list(prompts).count(prompt) > 1
        names.append(f"{prompt}_{seen[prompt]}" if repeated else prompt)
    return names


def _as_channels_first(audio: Audio) -> np.ndarray:
    """A read-only view or copy of `audio` as float32 (C, T); the caller's data is never changed."""
    if isinstance(audio, Tensor):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio)
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(
            f"audio must be floating point (e.g. float32 in [-1, 1]), got {audio.dtype}"
        )
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ValueError(f"audio must be (T,) or (C, T), got shape {audio.shape}")
    channels, length = audio.shape
    if length == 0:
        raise ValueError("audio is empty")
    if channels > max(length, 64):  # more channels than samples: surely transposed
        raise ValueError(
            f"audio of shape {audio.shape} looks like (T, C), the layout soundfile reads; "
            "pass it transposed, as (C, T)"
        )
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite samples")
    return audio.astype(np.float32, copy=False)


def _fit_length(y: np.ndarray, length: int) -> np.ndarray:
    """Cut or zero-pad the last axis to `length` (resampling there and back may be one off)."""
    if y.shape[-1] >= length:
        return y[..., :length]
    return np.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, length - y.shape[-1])])


class Separator:
    """Separate arrays of any length, rate and channel count with `model`.

    Args:
        model: a prompted model (`TUSS`: forward(mix (B, T), prompts) → (B, N, T)) or an
            unconditional one (forward(mix (B, T)) → (B, M, T), or (B, C, T) → (B, M, C, T)
            when `config.audio_channels` = C ≥ 2); its `config.sample_rate` is the rate it
            runs at. It is moved to `device` and put in eval mode.
        device: where the model runs; default CUDA when available, else CPU.
        segment, shift: chunk length and hop in seconds for inputs longer than one segment.
        batch_size: model inputs per forward pass (chunks × channels; at least one chunk of
            every channel).
        bf16: bf16 autocast on CUDA (ignored on CPU, where it would be slower).
        shifts: test-time augmentation; 0 separates once, K ≥ 1 averages K separations of the
            input delayed by random offsets in [0, max_shift] seconds (zero-padded), drawn
            from `seed` — the same K offsets for every recording. Costs K times the compute.
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device | None = None,
        segment: float = DEFAULT_SEGMENT,
        shift: float = DEFAULT_SHIFT,
        batch_size: int = DEFAULT_BATCH_SIZE,
        bf16: bool = False,
        shifts: int = 0,
        max_shift: float = DEFAULT_MAX_SHIFT,
        seed: int = 0,
    ) -> None:
        self.device = torch.device(device) if device is not None else default_device()
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("CUDA is not available on this machine; use device 'cpu'")
        self.model = model.to(self.device).eval()
        self.sample_rate = int(model.config.sample_rate)
        self.segment = round(segment * self.sample_rate)
        self.shift = round(shift * self.sample_rate)
        if not 0 < self.shift <= self.segment:
            raise ValueError(f"need 0 < shift ≤ segment, got shift {shift} s, segment {segment} s")
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self.batch_size = batch_size
        if shifts < 0 or max_shift < 0:
            raise ValueError(f"need shifts ≥ 0 and max_shift ≥ 0, got {shifts}, {max_shift} s")
        self.shift_offsets = shift_offsets(shifts, round(max_shift * self.sample_rate), seed)
        self.channels = model_channels(model)
        self.bf16 = bf16 and self.device.type == "cuda"
        if bf16 and not self.bf16:
            log.warning("bf16 autocast is only used on CUDA; running in float32 on %s", self.device)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device | None = None, **kwargs: object
    ) -> Separator:
        """Load the model exported in `directory` (or a run directory's `model/`), or a hub
        repository `org/name` (huggingface_hub's cache and offline mode; `wildsep.hub`)."""
        from wildsep.hub import resolve_pretrained

        device = torch.device(device) if device is not None else default_device()
        model = load_model(resolve_pretrained(directory), device)
        return cls(model, device, **kwargs)  # type: ignore[arg-type]

    @property
    def prompts(self) -> tuple[str, ...] | None:
        """The model's prompt names, or None for an unconditional model."""
        return tuple(self.model.config.prompts) if is_prompted(self.model) else None

    def check_prompts(self, prompts: Sequence[str] | None) -> list[str] | None:
        """Validate `prompts` for this model without touching audio; ValueError if unusable."""
        known = self.prompts
        if known is None:
            if prompts:
                raise ValueError(
                    f"this {type(self.model).__name__} is unconditional (it has "
                    f"{self.n_outputs(None)} outputs and no prompts); do not pass prompts"
                )
            return None
        if isinstance(prompts, str):
            prompts = [prompts]
        if not prompts:
            raise ValueError(f"this model needs prompts; it knows {list(known)}")
        unknown = sorted(set(prompts) - set(known))
        if unknown:
            raise ValueError(f"unknown prompts {unknown}; this model knows {list(known)}")
        return list(prompts)

    def n_outputs(self, prompts: Sequence[str] | None) -> int:
        """How many outputs `separate` returns for `prompts`."""
        if self.prompts is not None:
            return len(self.check_prompts(prompts) or ())
        config = self.model.config
        return int(getattr(config, "n_outputs", getattr(config, "n_sources", 0)))

    def output_names(self, prompts: Sequence[str] | None) -> list[str]:
        """Names of the outputs for `prompts` (see `output_names`); an unconditional model
        whose config names its `sources` (Demucs: drums, bass, …) gives those names."""
        checked = self.check_prompts(prompts)
        sources = getattr(self.model.config, "sources", ())
        if checked is None and sources:
            return list(sources)
        return output_names(checked, self.n_outputs(checked))

    def _forward(self, chunks: Tensor, prompts: list[str] | None) -> Tensor:
        """(b, L) CPU chunks → (b, K, L) float32 CPU estimates.

        For a C-channel model, the b = g·C rows are g chunks of C consecutive channels (the
        layout `overlap_add` passes): they go in as (g, C, L) and come back as (g·C, K, L).
        """
        x = chunks.to(self.device)
        if self.channels > 1:
            x = x.unflatten(0, (-1, self.channels))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            y = self.model(x) if prompts is None else self.model(x, prompts)
        expected = (x.shape[0], y.shape[1], *x.shape[1:])  # (b, K, L) or (g, K, C, L)
        if y.dim() < 3 or tuple(y.shape) != expected:
            layout = "(B, outputs, C, T)" if self.channels > 1 else "(B, outputs, T)"
            raise RuntimeError(
                f"{type(self.model).__name__} returned {tuple(y.shape)} for input "
                f"{tuple(x.shape)}; expected {layout}"
            )
        if self.channels > 1:
            y = y.transpose(1, 2).flatten(0, 1)  # (g, K, C, L) → (g·C, K, L)
        return y.float().cpu()

    def _check_channels(self, channels: int) -> None:
        if self.channels > 1 and channels not in (1, self.channels):
            raise ValueError(
                f"this {type(self.model).__name__} separates {self.channels}-channel audio "
                f"(or mono, duplicated); got {channels} channels"
            )

    def separate(
        self, audio: Audio, sample_rate: int, prompts: Sequence[str] | None = None
    ) -> Audio:
        """Separate one recording.

        Args:
            audio: (C, T) or (T,) floating-point samples, NumPy or torch; never modified.
            sample_rate: the rate of `audio`, any; the model runs at its own rate.
            prompts: for a prompted model, one output per name (duplicates allowed); None for
                an unconditional model. Checked before any audio is processed.
        Returns:
            (K, C, T) float32 at `sample_rate` and the input's length: K = len(prompts), or the
            model's M outputs. A NumPy array for NumPy input, else a tensor on the input's
            device. A (T,) input gives C = 1.
        """
        checked = self.check_prompts(prompts)
        x = _as_channels_first(audio)
        self._check_channels(x.shape[0])
        stream = _RecordingStream(self, sample_rate, x.shape[0], checked)
        parts = stream.push(x) + stream.finish()
        y = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        y = np.ascontiguousarray(y, dtype=np.float32)
        return torch.from_numpy(y).to(audio.device) if isinstance(audio, Tensor) else y

    def separate_stream(
        self, blocks: Iterable[Audio], sample_rate: int, prompts: Sequence[str] | None = None
    ) -> Iterator[np.ndarray]:
        """Separate one recording that arrives as consecutive blocks, in bounded memory.

        Args:
            blocks: (C, t) or (t,) floating-point blocks of one recording, any sizes (the
                channel count of the first holds for all); e.g. `open_audio_blocks`'s.
            sample_rate, prompts: as for `separate`; prompts are checked before any block
                is read.
        Yields:
            (K, C, t') float32 NumPy blocks at `sample_rate`. Concatenated, they are exactly
            what `separate` returns for the concatenated blocks: the same chunks in the same
            batches, and soxr's streaming resampler is its one-shot one. Memory is a few
            batches of chunks, whatever the recording's length.
        """
        checked = self.check_prompts(prompts)
        stream: _RecordingStream | None = None
        for block in blocks:
            if block.shape[-1] == 0:
                continue
            x = _as_channels_first(block)
            if stream is None:
                self._check_channels(x.shape[0])
                stream = _RecordingStream(self, sample_rate, x.shape[0], checked)
            elif x.shape[0] != stream.channels:
                raise ValueError(
                    f"a block has {x.shape[0]} channels, the recording {stream.channels}"
                )
            yield from stream.push(x)
        if stream is None:
            raise ValueError("audio is empty")
        yield from stream.finish()


class _RecordingStream:
    """One recording through a `Separator`, block by block: resampled to the model's rate,
    chunked and overlap-added (one pass per test-time shift, each delayed by its offset, then
    averaged), a duplicated mono channel folded back, resampled to the recording's rate and
    cut to its length. Every stage holds only the samples it still needs."""

    def __init__(
        self, separator: Separator, sample_rate: int, channels: int, prompts: list[str] | None
    ) -> None:
        sep = self.sep = separator
        self.sample_rate, self.channels = sample_rate, channels
        self.duplicate = sep.channels > 1 and channels == 1  # mono into a multichannel model
        self.rows = sep.channels if self.duplicate else channels
        self.to_model = StreamingResampler(sample_rate, sep.sample_rate, channels)
        self.from_model: StreamingResampler | None = None  # needs K: made at the first output
        self.offsets = sep.shift_offsets or [0]
        chunks_per_call = max(1, sep.batch_size // self.rows)

        def forward(chunks: Tensor) -> Tensor:
            return sep._forward(chunks, prompts)

        self.passes = [
            StreamingOverlapAdd(forward, sep.segment, sep.shift, chunks_per_call)
            for _ in self.offsets
        ]
        # Each pass's outputs not yet averaged with the others', and its leading samples (its
        # delay) still to drop.
        self.pending: list[Tensor | None] = [None] * len(self.offsets)
        self.skip = list(self.offsets)
        self.model_frames = 0  # model-rate output samples averaged so far
        self.frames_out = 0
        self._delay_passes()

    def _delay_passes(self) -> None:
        with torch.inference_mode():
            for i, offset in enumerate(self.offsets):
                if offset:
                    self._queue(i, self.passes[i].push(torch.zeros(self.rows, offset)))

    def push(self, x: np.ndarray) -> list[np.ndarray]:
        """(C, t) float32 at the recording's rate → the (K, C, t') outputs now final."""
        return self._run(self.to_model.push(x), ended=False)

    def finish(self) -> list[np.ndarray]:
        """The rest of the outputs, up to the recording's length."""
        return self._run(self.to_model.finish(), ended=True)

    def _queue(self, i: int, parts: list[Tensor]) -> None:
        if not parts:
            return
        previous = self.pending[i]
        joined = torch.cat(([previous] if previous is not None else []) + parts, -1)
        drop = min(self.skip[i], joined.shape[-1])
        self.skip[i] -= drop
        self.pending[i] = joined[..., drop:]

    def _run(self, at_model_rate: np.ndarray, ended: bool) -> list[np.ndarray]:
        rows = torch.from_numpy(np.ascontiguousarray(at_model_rate))
        if self.duplicate:
            rows = rows.repeat(self.sep.channels, 1)
        longest = max(self.offsets)
        with torch.inference_mode():
            for i, stream in enumerate(self.passes):
                parts = stream.push(rows) if rows.shape[-1] else []
                if ended:
                    if longest > self.offsets[i]:  # every pass ends as long as the longest
                        parts += stream.push(torch.zeros(self.rows, longest - self.offsets[i]))
                    parts += stream.finish()
                self._queue(i, parts)
            y = self._average(ended)
        return [] if y is None else self._to_recording(y, ended)

    def _average(self, ended: bool) -> Tensor | None:
        """(R, K, t) model-rate outputs ready in every pass, averaged over the passes."""
        if any(p is None for p in self.pending):
            return None
        ready = min(p.shape[-1] for p in self.pending)  # type: ignore[union-attr]
        if ended:  # the passes' zero-padded ends are not part of the recording
            ready = min(ready, self.to_model.frames_out - self.model_frames)
        taken = [p[..., :ready] for p in self.pending]  # type: ignore[index]
        self.pending = [p[..., ready:] for p in self.pending]  # type: ignore[index]
        self.model_frames += ready
        if len(taken) == 1:
            y = taken[0]
        else:
            y = (sum(t.double() for t in taken) / len(taken)).float()
        return y.mean(0, keepdim=True) if self.duplicate else y

    def _to_recording(self, y: Tensor, ended: bool) -> list[np.ndarray]:
        """(C, K, t) at the model's rate → [(K, C, t')] at the recording's, cut to its length."""
        k = y.shape[1]
        flat = y.transpose(0, 1).reshape(k * self.channels, -1).numpy()
        if self.from_model is None:
            self.from_model = StreamingResampler(self.sep.sample_rate, self.sample_rate, len(flat))
        out = self.from_model.push(flat)
        if ended:
            out = np.concatenate([out, self.from_model.finish()], axis=-1)
        out = out[:, : max(0, self.to_model.frames_in - self.frames_out)]
        if ended:  # resampling there and back may come out one sample short
            out = _fit_length(out, self.to_model.frames_in - self.frames_out)
        self.frames_out += out.shape[-1]
        if out.shape[-1] == 0:
            return []
        return [np.ascontiguousarray(out.reshape(k, self.channels, -1), dtype=np.float32)]
