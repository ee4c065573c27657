"""Spectral feature compression (SFC-CA, seed 001): cross-attention encoder and decoder.

The encoder maps F bins to Q band features with one learned query per band; the decoder maps Q
band features back to F bins with one learned query per bin. Attention logits get an ALiBi-style
positional bias that is zero inside a query's band and falls off linearly with the distance to
it, measured in widths of that band (wide high-frequency bands tolerate larger distances), with
one slope per head as in ALiBi, so some heads stay local and others see the whole spectrum.
Unlike the band-split layers, both directions are input-adaptive and see every bin.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from wildsep.models.bands import glu_mask
from wildsep.models.layers import RMSGroupNorm


def band_distance_bias(widths: tuple[int, ...], heads: int) -> torch.Tensor:
    """Additive attention bias (heads, Q, F): −slope_h · dist(f, band q) / w_q."""
    sizes = torch.tensor(widths, dtype=torch.float32)
    starts = torch.cumsum(sizes, 0) - sizes
    centre, half = starts + (sizes - 1) / 2, (sizes - 1) / 2
    bins = torch.arange(sum(widths), dtype=torch.float32)
    outside = ((bins - centre[:, None]).abs() - half[:, None]).clamp_min(0) / sizes[:, None]
    slopes = 2.0 ** (-8.0 * torch.arange(1, heads + 1) / heads)
    return -slopes[:, None, None] * outside


class BiasedCrossAttention(nn.Module):
    """Learned queries (Lq, D) attend over a context (N, Lk, D), fixed bias (heads, Lq, Lk)."""

    def __init__(self, dim: int, heads: int, bias: torch.Tensor) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.kv = nn.Linear(dim, dim, bias=False), nn.Linear(dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """queries: (Lq, D), context: (N, Lk, D) → (N, Lq, D)."""
        q = rearrange(self.q(queries), "l (h e) -> h l e", h=self.heads)
        k, v = rearrange(self.kv(context), "n l (two h e) -> two n h l e", two=2, h=self.heads)
        q = q.expand(context.shape[0], -1, -1, -1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.bias.to(q.dtype))
        return self.out(rearrange(y, "n h l e -> n l (h e)"))


class SFCEncoder(nn.Module):
    """Per-bin embedding Linear(2 → D), then Q learned band queries cross-attend over the bins."""

    def __init__(self, widths: tuple[int, ...], dim: int, heads: int) -> None:
        super().__init__()
        self.embed = nn.Linear(2, dim)
        self.queries = nn.Parameter(torch.randn(len(widths), dim))
        self.attn = BiasedCrossAttention(dim, heads, band_distance_bias(widths, heads))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """spec: (B, T, F, 2) → features (B, T, Q, D)."""
        b = spec.shape[0]
        bins = rearrange(self.embed(spec.float()), "b t f d -> (b t) f d")
        z = self.queries + self.attn(self.queries, bins)
        return rearrange(z, "(b t) q d -> b t q d", b=b)


class SFCDecoder(nn.Module):
    """F learned bin queries cross-attend over the Q bands, then an MLP → GLU → complex masks.

    The MLP (D → h → … → h, tanh, then h → 4·M) is shared by all bins: each bin's query already
    tells it which bin it is.
    """

    def __init__(
        self,
        widths: tuple[int, ...],
        dim: int,
        heads: int,
        n_outputs: int,
        hidden: int,
        layers: int = 2,
    ) -> None:
        super().__init__()
        self.n_outputs = n_outputs
        self.norm = RMSGroupNorm(dim, 1)
        self.queries = nn.Parameter(torch.randn(sum(widths), dim))
        self.attn = BiasedCrossAttention(dim, heads, band_distance_bias(widths, heads).mT)
        sizes = [dim] + [hidden] * layers
        mlp: list[nn.Module] = []
        for i, o in itertools.pairwise(sizes):
            mlp += [nn.Linear(i, o), nn.Tanh()]
        self.mlp = nn.Sequential(*mlp, nn.Linear(hidden, 4 * n_outputs))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, T, Q, D) → complex masks (B, M, T, F, 2), float32."""
        b = z.shape[0]
        bands = rearrange(self.norm(z), "b t q d -> (b t) q d")
        bins = self.queries + self.attn(self.queries, bands)
        bins = rearrange(bins, "(b t) f d -> b t f d", b=b)
        return glu_mask(self.mlp(bins), self.n_outputs)
