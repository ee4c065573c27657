"""Demucs (Défossez et al., 2019): a convolutional-recurrent U-Net on waveforms (reference §9).

Encoder of `depth` blocks, Conv1d(C_{i−1} → C_i, kernel K, stride S) → ReLU → 1×1 "rewrite"
Conv1d(C_i → 2C_i) → GLU, with C_i = C_1 · growth^(i−1); a bidirectional LSTM (hidden C_L) and
Linear(2C_L → C_L) at the bottleneck; a mirrored decoder whose block i adds encoder block i's
output (the U-Net skip, centre-trimmed to the decoder's length), then Conv1d(C_i → 2C_i, kernel
`context`) → GLU → ConvTranspose1d(C_i → C_{i−1}, K, S) → ReLU (no ReLU after the last block,
which outputs S·C channels).

Every convolution is "valid" (no padding): the input is zero-padded on both sides to the next
length the network maps without remainder (`valid_length`) and the output is centre-trimmed back,
so any input length gives exactly that length out. With `normalize`, the mixture is standardised
by the mean and standard deviation of its channel average, and every output is scaled back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from wildsep.models.pretrained import PretrainedModel

NORM_EPS = 1e-5  # added to the mixture's standard deviation: a silent input stays finite


@dataclass
class DemucsConfig:
    """Demucs geometry. `audio_channels` tells mono from multichannel models:

    - 1: the library's layout, mix (B, T) → estimates (B, S, T);
    - C ≥ 2: every channel at once, mix (B, C, T) → estimates (B, S, C, T).

    `sources` optionally names the S = `n_outputs` outputs in order (they name the files of
    `wildsep separate`); empty for anonymous outputs (e.g. MixIT).
    """

    sample_rate: int = 44100
    audio_channels: int = 2
    n_outputs: int = 4
    sources: tuple[str, ...] = ()
    depth: int = 6
    channels: int = 64  # C_1, output channels of the first encoder block
    growth: float = 2.0  # C_{i+1} = int(growth · C_i)
    kernel: int = 8
    stride: int = 4
    context: int = 3  # kernel of the decoder's context convolutions
    lstm_layers: int = 2  # 0: no LSTM at the bottleneck
    rescale: float = 0.1  # weight-rescaling reference at initialisation; 0 disables it
    normalize: bool = True

    def __post_init__(self) -> None:
        self.sources = tuple(self.sources)  # JSON gives a list back
        positive = ("sample_rate", "audio_channels", "n_outputs", "depth", "channels", "stride")
        for name in (*positive, "context"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.kernel < self.stride:
            raise ValueError(
                f"kernel ({self.kernel}) must be ≥ stride ({self.stride}), else samples are skipped"
            )
        if self.growth <= 0 or self.lstm_layers < 0 or self.rescale < 0:
            raise ValueError("growth must be > 0, lstm_layers ≥ 0 and rescale ≥ 0")
        if self.sources and (
            len(self.sources) != self.n_outputs or len(set(self.sources)) != len(self.sources)
        ):
            raise ValueError(
                f"sources {list(self.sources)} must be {self.n_outputs} unique names, one per "
                "output (n_outputs); set sources=[] for unnamed outputs"
            )

    def widths(self) -> list[int]:
        """Channels C_1 … C_L of the encoder blocks."""
        widths = [self.channels]
        for _ in range(self.depth - 1):
            widths.append(int(self.growth * widths[-1]))
        return widths


def valid_length(length: int, depth: int, kernel: int, stride: int, context: int) -> int:
    """The smallest padded length ≥ `length` whose output covers `length` samples.

    Going down, each encoder block needs ⌈(L − K)/S⌉ + 1 frames to cover L samples, plus
    `context` − 1 frames that the decoder's valid context convolution at that level consumes;
    going up, L frames are exactly (L − 1)·S + K samples, so no encoder block drops a remainder.
    """
    for _ in range(depth):
        length = max(1, math.ceil((length - kernel) / stride) + 1) + context - 1
    for _ in range(depth):
        length = (length - 1) * stride + kernel
    return length


def center_trim(x: Tensor, length: int) -> Tensor:
    """(..., L) → (..., length), dropping ⌊(L − length)/2⌋ samples at the start."""
    start = (x.shape[-1] - length) // 2
    return x[..., start : start + length]


def rescale_conv_weights(module: nn.Module, reference: float) -> None:
    """Divide each convolution's weight and bias by √(std(weight) / reference) (in place).

    The new weight std is √(std · reference): large initial weights shrink, small ones grow,
    which the Demucs paper found to help training.
    """
    with torch.no_grad():
        for conv in module.modules():
            if isinstance(conv, nn.Conv1d | nn.ConvTranspose1d):
                scale = (conv.weight.std() / reference).sqrt()
                conv.weight.div_(scale)
                if conv.bias is not None:
                    conv.bias.div_(scale)


class BLSTM(nn.Module):
    """Bidirectional LSTM over time, then Linear(2D → D): (B, D, L) → (B, D, L)."""

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers=layers, bidirectional=True, batch_first=True)
        self.linear = nn.Linear(2 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        y, _ = self.lstm(x.transpose(1, 2))
        return self.linear(y).transpose(1, 2)


def encoder_block(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    """(B, c_in, L) → (B, c_out, ⌊(L − K)/S⌋ + 1)."""
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, stride),
        nn.ReLU(),
        nn.Conv1d(c_out, 2 * c_out, 1),  # "rewrite"
        nn.GLU(dim=1),
    )


def decoder_block(
    c_in: int, c_out: int, kernel: int, stride: int, context: int, last: bool
) -> nn.Sequential:
    """(B, c_in, L) → (B, c_out, (L − context)·S + K)."""
    layers: list[nn.Module] = [
        nn.Conv1d(c_in, 2 * c_in, context),
        nn.GLU(dim=1),
        nn.ConvTranspose1d(c_in, c_out, kernel, stride),
    ]
    return nn.Sequential(*layers) if last else nn.Sequential(*layers, nn.ReLU())


class Demucs(PretrainedModel):
    """The 2019 Demucs; see the module docstring for the layout and `DemucsConfig` for shapes.

    forward: mono models (B, T) → (B, S, T); C-channel models (B, C, T) → (B, S, C, T);
    float32, exactly T samples for every T ≥ 1.
    """

    config_class = DemucsConfig

    def __init__(self, config: DemucsConfig) -> None:
        super().__init__(config)
        c = config
        widths = c.widths()
        inputs = [c.audio_channels, *widths[:-1]]
        outputs = [c.n_outputs * c.audio_channels, *widths[:-1]]
        self.encoder = nn.ModuleList(
            encoder_block(i, o, c.kernel, c.stride) for i, o in zip(inputs, widths, strict=True)
        )
        self.lstm = BLSTM(widths[-1], c.lstm_layers) if c.lstm_layers else None
        # decoder[0] mirrors the deepest encoder block; decoder[-1] outputs S·C channels.
        self.decoder = nn.ModuleList(
            decoder_block(w, o, c.kernel, c.stride, c.context, last=i == 0)
            for i, (w, o) in reversed(list(enumerate(zip(widths, outputs, strict=True))))
        )
        if c.rescale:
            rescale_conv_weights(self, c.rescale)

    def valid_length(self, length: int) -> int:
        """Length the input of `length` samples is padded to (see `valid_length`)."""
        c = self.config
        return valid_length(length, c.depth, c.kernel, c.stride, c.context)

    def forward(self, mix: Tensor) -> Tensor:
        """mix (B, T) for mono models, (B, C, T) otherwise → (B, S, T) / (B, S, C, T)."""
        c = self.config
        expected = "(B, T)" if c.audio_channels == 1 else f"(B, {c.audio_channels}, T)"
        mono = c.audio_channels == 1
        if mix.dim() != (2 if mono else 3) or (not mono and mix.shape[1] != c.audio_channels):
            raise ValueError(f"this Demucs takes {expected}, got {tuple(mix.shape)}")
        x = mix.float()[:, None] if mono else mix.float()  # (B, C, T)
        length = x.shape[-1]
        if c.normalize:
            reference = x.mean(1, keepdim=True)  # (B, 1, T)
            mean = reference.mean(-1, keepdim=True)
            std = reference.std(-1, correction=0, keepdim=True)
            x = (x - mean) / (std + NORM_EPS)
        pad = self.valid_length(length) - length
        x = F.pad(x, (pad // 2, pad - pad // 2))
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        if self.lstm is not None:
            x = self.lstm(x)
        for block in self.decoder:
            x = block(x + center_trim(skips.pop(), x.shape[-1]))
        out = center_trim(x, length).float().unflatten(1, (c.n_outputs, c.audio_channels))
        if c.normalize:
            out = out * std[:, None] + mean[:, None]
        return out[:, :, 0] if mono else out
