"""STFT front end: variance normalisation, analysis and exact-length synthesis, all in float32."""

from __future__ import annotations

import torch
from torch import nn

WINDOWS = ("sqrt_hann", "hann")


def complex_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Product of complex numbers stored as (..., 2) real/imaginary pairs."""
    (ar, ai), (br, bi) = a.unbind(-1), b.unbind(-1)
    return torch.stack((ar * br - ai * bi, ar * bi + ai * br), dim=-1)


class STFT(nn.Module):
    """Waveform ↔ spectrogram with an optional per-example variance normalisation.

    `forward` divides each input by its standard deviation and returns that scale; `inverse`
    multiplies it back. Frames are centred with zero padding, so every input length (even one
    shorter than the window) is reconstructed to exactly its length. Spectra are real tensors with
    a trailing (real, imag) axis, which `torch.compile` handles better than complex dtypes.
    Runs in float32 with autocast disabled: a bf16 STFT loses too much precision.
    """

    def __init__(
        self, n_fft: int, hop: int, window: str = "sqrt_hann", normalize: bool = True
    ) -> None:
        super().__init__()
        if window not in WINDOWS:
            raise ValueError(f"unknown window {window!r}; choose one of {WINDOWS}")
        win = torch.hann_window(n_fft)
        self.register_buffer("window", win.sqrt() if window == "sqrt_hann" else win, False)
        self.n_fft, self.hop, self.normalize = n_fft, hop, normalize

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T) → spectrum (B, T', F, 2) with T' = T // hop + 1, and scale (B,)."""
        if x.dim() != 2:
            raise ValueError(f"expected a batch of mono waveforms (B, T), got {tuple(x.shape)}")
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            scale = x.std(-1, correction=0) + 1e-8 if self.normalize else x.new_ones(x.shape[0])
            spec = torch.stft(
                x / scale[:, None],
                self.n_fft,
                self.hop,
                window=self.window,
                center=True,
                pad_mode="constant",
                return_complex=True,
            )
            return torch.view_as_real(spec).transpose(1, 2), scale

    def inverse(self, spec: torch.Tensor, scale: torch.Tensor, length: int) -> torch.Tensor:
        """spec: (B, ..., T', F, 2), scale: (B,) → waveforms (B, ..., length)."""
        with torch.autocast(spec.device.type, enabled=False):
            lead = spec.shape[:-3]
            spec = torch.view_as_complex(spec.float().flatten(0, -4).transpose(1, 2).contiguous())
            y = torch.istft(spec, self.n_fft, self.hop, window=self.window, length=length)
            y = y.reshape(*lead, length)
            return y * scale.reshape(-1, *[1] * (y.dim() - 1))
