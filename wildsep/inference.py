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
- prompts checked against the model's prompt table before any audio is touched.

```python
sep = Separator.from_pretrained("ckpt/")               # GPU when available
stems = sep.separate(audio, 44100, ["speech", "sfx"])  # audio (C, T) → (2, C, T)
```
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from wildsep.data.audio_io import resample
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
    """
    rows, length = x.shape
    if length <= segment:
        return fn(x.clone())  # clone: the result must never alias the caller's audio
    n = num_chunks(length, segment, shift)
    padded = F.pad(x, (0, (n - 1) * shift + segment - length))
    window = crossfade_window(segment, shift)
    out: Tensor | None = None
    carry: tuple[Tensor, Tensor] | None = None  # (sum of weighted outputs, sum of weights)
    for first in range(0, n, chunks_per_call):
        last = min(n, first + chunks_per_call)
        g, start = last - first, first * shift
        span = (g - 1) * shift + segment
        chunks = padded[:, start : start + span].unfold(-1, segment, shift)  # (R, g, L)
        y = fn(chunks.transpose(0, 1).reshape(g * rows, segment))  # (g·R, K, L)
        k = y.shape[1]
        y = y.reshape(g, rows, k, segment).double() * window
        acc = _fold(y.permute(1, 2, 3, 0).reshape(rows * k, segment, g), shift, span)
        weight = _fold(window.reshape(1, segment, 1).expand(1, segment, g), shift, span)[0]
        if carry is not None:  # the tail of the previous call's last chunk overlaps this span
            acc[:, : carry[1].numel()] += carry[0]
            weight[: carry[1].numel()] += carry[1]
        # Samples before the next call's first chunk get no more contributions: final.
        done = last * shift - start if last < n else span
        if out is None:
            out = torch.empty(rows, k, length, dtype=torch.float32)
        end = min(start + done, length)
        final = acc[:, : end - start] / weight[: end - start]
        out[:, :, start:end] = final.reshape(rows, k, -1).float()
        carry = (acc[:, done:], weight[done:])
    assert out is not None
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

    def _separate_rows(self, x: Tensor, prompts: list[str] | None) -> Tensor:
        """(R, T) rows at the model's rate → (R, K, T): chunked, averaged over the shifts."""
        chunks_per_call = max(1, self.batch_size // x.shape[0])

        def separate(rows: Tensor) -> Tensor:
            return overlap_add(
                rows,
                lambda chunks: self._forward(chunks, prompts),
                self.segment,
                self.shift,
                chunks_per_call,
            )

        if not self.shift_offsets:
            return separate(x)
        length, longest = x.shape[-1], max(self.shift_offsets)
        # K passes over the whole recording, each delayed by its offset; summed as they come.
        total = sum(
            separate(F.pad(x, (offset, longest - offset)))[..., offset : offset + length].double()
            for offset in self.shift_offsets
        )
        return (total / len(self.shift_offsets)).float()

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
        channels, length = x.shape
        if self.channels > 1 and channels not in (1, self.channels):
            raise ValueError(
                f"this {type(self.model).__name__} separates {self.channels}-channel audio "
                f"(or mono, duplicated); got {channels} channels"
            )
        at_model_rate = np.ascontiguousarray(resample(x, sample_rate, self.sample_rate))
        rows = torch.from_numpy(at_model_rate)
        if self.channels > 1 and channels == 1:
            rows = rows.repeat(self.channels, 1)
        with torch.inference_mode():
            y = self._separate_rows(rows, checked)  # (C, K, T_model)
        if self.channels > 1 and channels == 1:
            y = y.mean(0, keepdim=True)  # back to the recording's one channel
        y = resample(y.transpose(0, 1).numpy(), self.sample_rate, sample_rate)
        y = np.ascontiguousarray(_fit_length(y, length), dtype=np.float32)
        return torch.from_numpy(y).to(audio.device) if isinstance(audio, Tensor) else y
