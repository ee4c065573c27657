"""Band layout, the band-split encoder and the band-wise mask decoder (BS-RoFormer style).

Bands have different widths. Rather than one small layer per band (a Python loop in forward),
every band is padded to the widest one through a precomputed gather index, and each layer is a
single einsum with per-band weights. Weights that act on bins are stored per *bin* (bands do not
overlap, so every bin belongs to exactly one band) and scattered into the padded layout on the
fly: the parameter count is exactly that of the per-band layers, with no padding waste.
"""

from __future__ import annotations

import itertools
import math

import torch
from einops import rearrange
from torch import nn

# (upper edge in Hz, bins per band) of BS-RoFormer's layout; everything above the last edge is
# split into `n_last` nearly equal bands. At 48 kHz and n_fft 2048 this gives 61 bands.
BS_ROFORMER_REGIONS: tuple[tuple[float, int], ...] = (
    (1000, 2),
    (2000, 4),
    (4000, 12),
    (8000, 24),
    (16000, 48),
)


def band_widths(
    sample_rate: int,
    n_fft: int,
    regions: tuple[tuple[float, int], ...] = BS_ROFORMER_REGIONS,
    n_last: int = 4,
) -> tuple[int, ...]:
    """Number of STFT bins in each band, low to high; the widths sum to n_fft // 2 + 1.

    A region from f_lo to f_hi Hz with w bins per band gets ceil((f_hi − f_lo) / (w·Δf)) bands
    (Δf = sample_rate / n_fft), regions are clipped at Nyquist, and the band that would run past
    the last bin is cut short. The bins left above the last region form `n_last` bands.
    """
    n_bins, bin_hz = n_fft // 2 + 1, sample_rate / n_fft
    widths: list[int] = []
    low = 0.0
    for high, width in regions:
        high = min(high, sample_rate / 2)
        for _ in range(math.ceil(max(high - low, 0) / (width * bin_hz))):
            left = n_bins - sum(widths)
            if left > 0:
                widths.append(min(width, left))
        low = max(low, high)
    left = n_bins - sum(widths)
    if left > 0:
        k = min(n_last, left)
        widths += [left // k] * (k - left % k) + [left // k + 1] * (left % k)
    return tuple(widths)


class BandLayout(nn.Module):
    """Gather tables that pad variable-width bands to the widest one.

    sizes (Q,): bins per band; index (Q, W): the bin at slot w of band q (0 where padded);
    valid (Q, W): whether the slot holds a bin; unpad (F,): the position of each bin in the
    flattened (Q·W) padded layout; runs: (first band, end band, first bin, end bin, width) of
    each run of consecutive equal-width bands (7 runs for the 61 bands at 48 kHz).
    """

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.widths = tuple(widths)
        # Plain lists, so the tables can also be built under `torch.device("meta")`.
        most = max(widths)
        starts = [sum(widths[:q]) for q in range(len(widths))]
        index = [
            [start + w if w < width else 0 for w in range(most)]
            for start, width in zip(starts, widths, strict=True)
        ]
        valid = [[w < width for w in range(most)] for width in widths]
        unpad = [q * most + w for q, width in enumerate(widths) for w in range(width)]
        self.runs: list[tuple[int, int, int, int, int]] = []
        for width, group in itertools.groupby(range(len(widths)), key=widths.__getitem__):
            bands = list(group)
            first_bin = starts[bands[0]]
            end_bin = first_bin + width * len(bands)
            self.runs.append((bands[0], bands[-1] + 1, first_bin, end_bin, width))
        self.register_buffer("sizes", torch.tensor(widths), persistent=False)
        self.register_buffer("index", torch.tensor(index), persistent=False)
        self.register_buffer("valid", torch.tensor(valid), persistent=False)
        self.register_buffer("unpad", torch.tensor(unpad), persistent=False)

    @property
    def n_bands(self) -> int:
        return len(self.widths)

    def pad(self, per_bin: torch.Tensor) -> torch.Tensor:
        """Per-bin tensor (F, ...) → padded per-band tensor (Q, W, ...), zero in padded slots."""
        valid = self.valid.reshape(*self.valid.shape, *[1] * (per_bin.dim() - 1))
        return per_bin[self.index] * valid


def uniform_(tensor: torch.Tensor, fan_in: float | list[int]) -> torch.Tensor:
    """PyTorch's default Linear init, U(±1/√fan_in), with a fan-in that may vary along dim 0."""
    bound = torch.as_tensor(fan_in, dtype=torch.float32, device=tensor.device).rsqrt()
    bound = bound.reshape(-1, *[1] * (tensor.dim() - 1)) if bound.dim() else bound
    with torch.no_grad():
        return tensor.copy_((torch.rand_like(tensor) * 2 - 1) * bound)


class BandSplitEncoder(nn.Module):
    """Per band: GroupNorm(1, 2·w) over (channels, time) then a 1×1 projection 2·w → D."""

    def __init__(self, widths: tuple[int, ...], dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.layout, self.eps = BandLayout(widths), eps
        n_bins = sum(widths)
        fan_in = [2 * width for width in widths]  # inputs to each band's projection
        fan_in_of_bin = [2 * width for width in widths for _ in range(width)]
        self.norm_weight = nn.Parameter(torch.ones(n_bins, 2))
        self.norm_bias = nn.Parameter(torch.zeros(n_bins, 2))
        self.weight = nn.Parameter(uniform_(torch.empty(n_bins, 2, dim), fan_in_of_bin))
        self.bias = nn.Parameter(uniform_(torch.empty(len(widths), dim), fan_in))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """spec: (B, T, F, 2) → features (B, T, Q, D)."""
        layout = self.layout
        with torch.autocast(spec.device.type, enabled=False):
            x = spec.float()[:, :, layout.index]  # (B, T, Q, W, 2)
            valid = layout.valid[:, :, None]
            count = spec.shape[1] * 2 * layout.sizes  # (Q,): values per band
            mean = (x * valid).sum((1, 3, 4)) / count  # (B, Q)
            x = x - mean[:, None, :, None, None]
            var = (x.square() * valid).sum((1, 3, 4)) / count
            x = x * (var + self.eps).rsqrt()[:, None, :, None, None]
            x = x * layout.pad(self.norm_weight) + layout.pad(self.norm_bias)
        return torch.einsum("btqwc,qwcd->btqd", x, layout.pad(self.weight)) + self.bias


class BandMaskDecoder(nn.Module):
    """Per band: GroupNorm(1, D) → MLP (D → h → … → h, tanh) → Linear(h → 4·w·M) → GLU.

    Produces, for each of M outputs, a complex mask for every bin of the band. The final
    projection's output axis is laid out as (output m, GLU half g, real/imag c).
    """

    def __init__(
        self,
        widths: tuple[int, ...],
        dim: int,
        n_outputs: int,
        hidden: int,
        layers: int = 2,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.layout, self.eps, self.n_outputs = BandLayout(widths), eps, n_outputs
        q, n_bins = len(widths), sum(widths)
        self.norm_weight = nn.Parameter(torch.ones(q, dim))
        self.norm_bias = nn.Parameter(torch.zeros(q, dim))
        sizes = [dim] + [hidden] * layers
        pairs = list(itertools.pairwise(sizes))
        self.mlp_weights = nn.ParameterList(uniform_(torch.empty(q, i, o), i) for i, o in pairs)
        self.mlp_biases = nn.ParameterList(uniform_(torch.empty(q, o), i) for i, o in pairs)
        self.weight = nn.Parameter(uniform_(torch.empty(n_bins, hidden, n_outputs * 4), hidden))
        self.bias = nn.Parameter(uniform_(torch.empty(n_bins, n_outputs * 4), hidden))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, T, Q, D) → complex masks (B, M, T, F, 2), float32."""
        with torch.autocast(z.device.type, enabled=False):
            z = z.float()
            mean = z.mean((1, 3), keepdim=True)
            var = (z - mean).square().mean((1, 3), keepdim=True)
            h = (z - mean) * (var + self.eps).rsqrt() * self.norm_weight + self.norm_bias
        for weight, bias in zip(self.mlp_weights, self.mlp_biases, strict=True):
            h = torch.tanh(torch.einsum("btqi,qio->btqo", h, weight) + bias)
        return glu_mask(self.project(h) + self.bias, self.n_outputs)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """The final per-bin projection: h (B, T, Q, hidden) → (B, T, F, 4M), without bias.

        One einsum per run of equal-width bands: no padded slots (padding every band to the
        widest would compute 4087 slots for 1025 bins at 48 kHz) and no gather."""
        return torch.cat(
            [
                torch.einsum(
                    "btqh,qwho->btqwo", h[:, :, q0:q1], self.weight[f0:f1].unflatten(0, (-1, w))
                ).flatten(2, 3)
                for q0, q1, f0, f1, w in self.layout.runs
            ],
            dim=2,
        )


def glu_mask(out: torch.Tensor, n_outputs: int) -> torch.Tensor:
    """(B, T, F, M·2·2) laid out as (m, value/gate, re/im) → masks (B, M, T, F, 2) in float32."""
    with torch.autocast(out.device.type, enabled=False):
        out = rearrange(out.float(), "b t f (m g c) -> g b m t f c", m=n_outputs, g=2)
        return out[0] * torch.sigmoid(out[1])
