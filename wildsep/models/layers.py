"""Building blocks of the TF-Locoformer block: normalisation, convolutional FFN, rotary attention.

Every module here works on channels-last sequences `(N, L, D)`: N independent sequences (batch
times the other axis) of length L with D channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
        x = x.float().unflatten(-1, (self.groups, -1))  # (..., G, C)
        # The scale is computed on the small (..., G, 1) tensor, so the full-size tensor sees
        # one norm and two multiplications (no square, mean and division passes over it).
        rms = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * x.shape[-1] ** -0.5
        return (x * (rms + self.eps).reciprocal()).flatten(-2) * self.weight.float()


class ConvSwiGLU(nn.Module):
    """Local-context FFN: Conv1d(D→2H, K) → value·SiLU(gate) → ConvTranspose1d(H→D, K).

    Both convolutions are padded by K−1, so the output length equals the input length for any
    K and any sequence length (the conv adds K−1 steps, the transposed conv removes them).

    The weights are those of `nn.Conv1d`/`nn.ConvTranspose1d` (checkpoint layout), but the
    convolutions run as 2-D ones on a (N, D, 1, L) view of the channels-last input: that view
    *is* channels-last (NHWC) memory, which oneDNN convolves directly, so no transposition copy
    is made on the way in or out.
    """

    def __init__(self, dim: int, hidden: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, 2 * hidden, kernel, padding=kernel - 1)
        self.deconv = nn.ConvTranspose1d(hidden, dim, kernel, padding=kernel - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, L, D) → (N, L, D)."""
        pad = (0, self.conv.kernel_size[0] - 1)
        x = x.transpose(1, 2).unsqueeze(2)  # (N, D, 1, L): channels-last strides
        hidden = F.conv2d(x, self.conv.weight.unsqueeze(2), self.conv.bias, padding=pad)
        value, gate = hidden.chunk(2, dim=1)
        y = F.conv_transpose2d(
            value * F.silu(gate), self.deconv.weight.unsqueeze(2), self.deconv.bias, padding=pad
        )
        return y.squeeze(2).transpose(1, 2)


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
        """x: (..., L, E) → same shape, position l rotated by l·θ."""
        pos = torch.arange(x.shape[-2], device=x.device, dtype=torch.float32)
        angle = torch.outer(pos, self.inv_freq)  # (L, E/2)
        # x·cos + (−x₂, x₁)·sin, written as x·cos + (x₂, x₁)·(−sin, sin): one flip instead of a
        # negation and a concatenation. Same dtype as x so q, k and v reach the attention kernel
        # with one dtype (bf16).
        cos = angle.cos().repeat(1, 2).to(x.dtype)
        sin = torch.cat((-angle.sin(), angle.sin()), dim=-1).to(x.dtype)
        swapped = x.unflatten(-1, (2, -1)).flip(-2).flatten(-2)
        return torch.addcmul(x * cos, swapped, sin)


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
        n, length, _ = x.shape
        qkv = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        qk = self.rope(qkv[:2].contiguous())  # q and k rotated together: (2, N, heads, L, E)
        y = F.scaled_dot_product_attention(qk[0], qk[1], qkv[2])
        return self.out(y.transpose(1, 2).reshape(n, length, -1))
