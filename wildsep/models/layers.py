"""Building blocks of the TF-Locoformer block: normalisation, convolutional FFN, rotary attention.

Every module here works on channels-last sequences `(N, L, D)`: N independent sequences (batch
times the other axis) of length L with D channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class RMSGroupNorm(nn.Module):
    """Split D channels into G groups and scale each group to unit RMS, then a per-channel gain.

    y_g = x_g / (rms(x_g) + eps) · γ (no mean removal, no bias). Computed in float32 so it is
    safe under bf16 autocast; the float32 result keeps the residual stream in float32.
    """

    def __init__(self, dim: int, groups: int, eps: float = 1e-5) -> None:
        super().__init__()
        if dim % groups:
            raise ValueError(f"RMSGroupNorm: dim {dim} is not divisible by groups {groups}")
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., D) → (..., D) float32."""
        x = rearrange(x.float(), "... (g c) -> ... g c", g=self.groups)
        x = x / (x.square().mean(-1, keepdim=True).sqrt() + self.eps)
        return rearrange(x, "... g c -> ... (g c)") * self.weight.float()


class ConvSwiGLU(nn.Module):
    """Local-context FFN: Conv1d(D→2H, K) → value·SiLU(gate) → ConvTranspose1d(H→D, K).

    Both convolutions are padded by K−1, so the output length equals the input length for any
    K and any sequence length (the conv adds K−1 steps, the transposed conv removes them).
    """

    def __init__(self, dim: int, hidden: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, 2 * hidden, kernel, padding=kernel - 1)
        self.deconv = nn.ConvTranspose1d(hidden, dim, kernel, padding=kernel - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, L, D) → (N, L, D)."""
        value, gate = self.conv(rearrange(x, "n l d -> n d l")).chunk(2, dim=1)
        return rearrange(self.deconv(value * F.silu(gate)), "n d l -> n l d")


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE) over the last axis of per-head queries or keys.

    Rotates channel pairs (i, i + E/2) by angle pos·θ_i with θ_i = base^(−2i/E), so the dot
    product of a query and a key depends only on their relative position.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding needs an even head dimension, got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, heads, L, E) → same shape, position l rotated by l·θ."""
        pos = torch.arange(x.shape[-2], device=x.device, dtype=torch.float32)
        angle = torch.outer(pos, self.inv_freq).repeat(1, 2)  # (L, E)
        # Same dtype as x so that q, k and v reach the attention kernel with one dtype (bf16).
        cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
        first, second = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-second, first), dim=-1) * sin


class MultiHeadSelfAttention(nn.Module):
    """qkv Linear(D→3A) → RoPE on q, k → scaled_dot_product_attention → Linear(A→D).

    Going through `F.scaled_dot_product_attention` lets PyTorch pick flash / memory-efficient
    kernels on GPU.
    """

    def __init__(self, dim: int, attn_dim: int, heads: int) -> None:
        super().__init__()
        if attn_dim % heads:
            raise ValueError(f"attention dim {attn_dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * attn_dim, bias=False)
        self.rope = RotaryEmbedding(attn_dim // heads)
        self.out = nn.Linear(attn_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, L, D) → (N, L, D)."""
        q, k, v = rearrange(self.qkv(x), "n l (three h e) -> three n h l e", three=3, h=self.heads)
        y = F.scaled_dot_product_attention(self.rope(q), self.rope(k), v)
        return self.out(rearrange(y, "n h l e -> n l (h e)"))
