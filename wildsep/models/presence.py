"""Source-presence classifier: which classes are audible in each window of a recording.

The first model of the Demucs semi-supervised scheme (reference §5): trained on mixtures of
labeled pools whose per-window targets come from each reference's energy
(:func:`presence_targets`), then run over unlabeled audio to find segments where a class is
absent (`wildsep.data.mining`).

Windows are the unit everywhere: window j covers samples [j·hop, j·hop + window) of the input,
and there are ``num_windows(T) = (T − window) // hop + 1`` of them (0 if T < window). The
targets, the classifier's outputs and the miner all use this grid, so a window index means the
same span of audio in each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wildsep.models.pretrained import PretrainedModel

REFERENCES = ("peak", "rms", "absolute")


def num_windows(length: int, window: int, hop: int) -> int:
    """Number of whole windows of `window` samples at `hop` in `length` samples."""
    return 0 if length < window else (length - window) // hop + 1


def window_energy(x: Tensor, window: int, hop: int) -> Tensor:
    """Mean square per window: (..., T) → (..., W), float32."""
    frames = x.float().unfold(-1, window, hop)  # (..., W, window), a view
    return frames.pow(2).mean(-1)


def presence_targets(
    sources: Tensor,
    window: int,
    hop: int,
    threshold_db: float = -30.0,
    reference: str = "peak",
    floor_db: float = -120.0,
) -> Tensor:
    """Per-window presence of each source, from its own energy.

    A source is present in a window when the window's mean square exceeds the reference level
    plus `threshold_db` (dB) and also `floor_db` dBFS (so numerical dust never counts):

    - ``"peak"``: relative to the source's loudest window (level-invariant: a quiet source is
      still present where it sounds);
    - ``"rms"``: relative to the source's mean power over the whole clip;
    - ``"absolute"``: relative to full scale (1.0), i.e. `threshold_db` is in dBFS.

    A silent source is absent everywhere.

    Args:
        sources: (..., T) waveforms, e.g. (B, S, T) references.
    Returns:
        (..., W) bool.
    """
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    energy = window_energy(sources, window, hop)  # (..., W)
    if reference == "peak":
        level = energy.amax(-1, keepdim=True) if energy.shape[-1] else energy
    elif reference == "rms":
        level = sources.float().pow(2).mean(-1, keepdim=True)
    else:
        level = torch.ones_like(energy[..., :1])
    threshold = torch.clamp(level * 10 ** (threshold_db / 10), min=10 ** (floor_db / 10))
    return energy > threshold


def class_presence(
    presence: Tensor, labels: Sequence[Sequence[str]], classes: Sequence[str]
) -> Tensor:
    """Per-class presence from per-source presence: a class is present where any of its
    sources is. Sources of classes outside `classes` are ignored.

    Args:
        presence: (B, S, W) bool, from :func:`presence_targets` on the references.
        labels: B lists of S class names (a batch's prompts).
        classes: the C class names of the classifier, in output order.
    Returns:
        (B, W, C) float32 in {0, 1}.
    """
    index = {name: c for c, name in enumerate(classes)}
    batch, sources = presence.shape[:2]
    one_hot = torch.zeros(batch, sources, len(classes), device=presence.device)
    for b, row in enumerate(labels):
        for s, name in enumerate(row):
            if name in index:
                one_hot[b, s, index[name]] = 1.0
    return (torch.bmm(presence.float().transpose(1, 2), one_hot) > 0).float()


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> Tensor:
    """Triangular filters on the HTK mel scale, (n_mels, n_fft // 2 + 1), rows peak at 1."""

    def to_mel(hz: Tensor) -> Tensor:
        return 2595.0 * torch.log10(1.0 + hz / 700.0)

    def to_hz(mel: Tensor) -> Tensor:
        return 700.0 * (10 ** (mel / 2595.0) - 1.0)

    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = to_hz(torch.linspace(0.0, float(to_mel(torch.tensor(sample_rate / 2.0))), n_mels + 2))
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - low) / (centre - low)
    falling = (high - bins) / (high - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


@dataclass
class PresenceConfig:
    """Geometry of a :class:`PresenceClassifier`; stored as JSON next to its weights."""

    classes: list[str] = field(default_factory=lambda: ["speech", "sfx", "sfxbg", "musicbg"])
    sample_rate: int = 8000
    n_fft: int = 256
    # STFT hop in samples (10 ms at 8 kHz); the presence window and its hop are multiples of it
    hop: int = 80
    n_mels: int = 48
    window_seconds: float = 0.5
    window_hop_seconds: float = 0.25
    channels: int = 32  # width of the 2-D conv stack
    conv_blocks: int = 3  # each halves the mel axis
    dim: int = 64  # width of the temporal context stack
    context_blocks: int = 3  # dilated residual Conv1d blocks, dilations 1, 2, 4, ...
    kernel: int = 5

    def __post_init__(self) -> None:
        self.classes = list(self.classes)  # JSON and omegaconf give lists back
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be non-empty and unique, got {self.classes}")
        if self.window % self.hop or self.window_hop % self.hop or self.window_hop < 1:
            raise ValueError(
                f"window_seconds ({self.window} samples) and window_hop_seconds "
                f"({self.window_hop} samples) must be positive multiples of hop={self.hop}"
            )
        if self.n_mels >> self.conv_blocks < 1:
            raise ValueError(f"n_mels={self.n_mels} is too small for {self.conv_blocks} blocks")

    @property
    def window(self) -> int:
        """Presence window in samples."""
        return round(self.window_seconds * self.sample_rate)

    @property
    def window_hop(self) -> int:
        """Hop between presence windows in samples."""
        return round(self.window_hop_seconds * self.sample_rate)

    def num_windows(self, length: int) -> int:
        return num_windows(length, self.window, self.window_hop)


class _ContextBlock(nn.Module):
    """Residual dilated Conv1d over time: x + Conv(GELU(Norm(x)))."""

    def __init__(self, dim: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, dim)
        self.conv = nn.Conv1d(
            dim, dim, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(F.gelu(self.norm(x)))


class PresenceClassifier(PretrainedModel):
    """Log-mel front end → 2-D conv blocks → dilated temporal convs → per-window logits.

    Level-invariant: each input is divided by its standard deviation before the STFT, so the
    same scene at any gain gets the same output. Frame k of the STFT is centred on sample
    k·hop, so the frames of window j are [j·w_hop/hop, (j·w_hop + window)/hop), which is what
    the average pooling over frames takes.
    """

    config_class = PresenceConfig

    def __init__(self, config: PresenceConfig) -> None:
        super().__init__(config)
        c = config
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        self.register_buffer(
            "mel", mel_filterbank(c.sample_rate, c.n_fft, c.n_mels), persistent=False
        )
        convs: list[nn.Module] = []
        width = 1
        for _ in range(c.conv_blocks):
            convs += [
                nn.Conv2d(width, c.channels, 3, padding=1),
                nn.GroupNorm(4 if c.channels % 4 == 0 else 1, c.channels),
                nn.GELU(),
                nn.MaxPool2d((2, 1)),  # pool the mel axis only: time resolution stays
            ]
            width = c.channels
        self.convs = nn.Sequential(*convs)
        self.project = nn.Conv1d(c.channels * (c.n_mels >> c.conv_blocks), c.dim, 1)
        self.context = nn.Sequential(
            *[_ContextBlock(c.dim, c.kernel, 2**i) for i in range(c.context_blocks)]
        )
        self.norm = nn.GroupNorm(1, c.dim)
        self.head = nn.Linear(c.dim, len(c.classes))

    @property
    def classes(self) -> list[str]:
        return self.config.classes

    def features(self, x: Tensor) -> Tensor:
        """(B, T) → log-mel (B, n_mels, frames) of the std-normalised input, float32."""
        c = self.config
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            x = x / (x.std(-1, keepdim=True, correction=0) + 1e-8)
            spec = torch.stft(x, c.n_fft, c.hop, window=self.window, return_complex=True)
            power = spec.real.pow(2) + spec.imag.pow(2)  # (B, F, frames)
            return torch.log(self.mel @ power + 1e-6)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, T) waveforms → logits (B, W, C) with W = config.num_windows(T)."""
        if x.dim() != 2:
            raise ValueError(f"expected a batch of mono waveforms (B, T), got {tuple(x.shape)}")
        c = self.config
        windows = c.num_windows(x.shape[-1])
        if windows == 0:
            raise ValueError(
                f"input of {x.shape[-1]} samples is shorter than one presence window "
                f"({c.window} samples)"
            )
        z = self.convs(self.features(x).unsqueeze(1))  # (B, channels, mels', frames)
        z = self.project(z.flatten(1, 2))  # (B, dim, frames)
        z = self.norm(self.context(z))
        z = F.avg_pool1d(z, c.window // c.hop, c.window_hop // c.hop)  # (B, dim, W')
        return self.head(z[..., :windows].transpose(1, 2))

    @torch.no_grad()
    def probabilities(self, x: Tensor, chunk_seconds: float = 60.0) -> Tensor:
        """P(class present) per window of one long recording: (T,) → (W, C), float32.

        Long inputs are cut into chunks of whole windows (plus the overlap of the last window)
        so memory stays bounded; window j is the same span of audio as in one long call.
        """
        c = self.config
        total = c.num_windows(x.shape[-1])
        per_chunk = max(
            1, math.floor((chunk_seconds * c.sample_rate - c.window) / c.window_hop) + 1
        )
        out = []
        for first in range(0, total, per_chunk):
            count = min(per_chunk, total - first)
            start = first * c.window_hop
            piece = x[start : start + (count - 1) * c.window_hop + c.window]
            out.append(torch.sigmoid(self(piece.unsqueeze(0))[0].float()))
        return torch.cat(out) if out else x.new_zeros(0, len(c.classes))
