"""The TF-Locoformer block (Saijo et al., 2024), shared by every model in this package."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from wildsep.models.layers import ConvSwiGLU, MultiHeadSelfAttention, RMSGroupNorm


class MacaronPath(nn.Module):
    """Pre-norm macaron along one axis: x += FFN(N x); x += MHSA(N x); x += FFN(N x)."""

    def __init__(
        self, dim: int, heads: int, attn_dim: int, ffn_hidden: int, kernel: int, groups: int
    ) -> None:
        super().__init__()
        self.norm_ffn1 = RMSGroupNorm(dim, groups)
        self.ffn1 = ConvSwiGLU(dim, ffn_hidden, kernel)
        self.norm_attn = RMSGroupNorm(dim, groups)
        self.attn = MultiHeadSelfAttention(dim, attn_dim, heads)
        self.norm_ffn2 = RMSGroupNorm(dim, groups)
        self.ffn2 = ConvSwiGLU(dim, ffn_hidden, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, L, D) → (N, L, D)."""
        x = x + self.ffn1(self.norm_ffn1(x))
        x = x + self.attn(self.norm_attn(x))
        return x + self.ffn2(self.norm_ffn2(x))


class TFLocoformerBlock(nn.Module):
    """Frequency path (sequences over F for each frame) then time path (over T for each bin).

    Works on channels-last TF features (B, T, F, D); F can be STFT bins or bands, and T may hold
    extra leading tokens (TUSS puts its prompts and SOS there).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        attn_dim: int,
        ffn_hidden: int,
        kernel: int,
        groups: int,
    ) -> None:
        super().__init__()
        self.freq = MacaronPath(dim, heads, attn_dim, ffn_hidden, kernel, groups)
        self.time = MacaronPath(dim, heads, attn_dim, ffn_hidden, kernel, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, F, D) → (B, T, F, D)."""
        b = x.shape[0]
        x = rearrange(self.freq(rearrange(x, "b t f d -> (b t) f d")), "(b t) f d -> b t f d", b=b)
        x = rearrange(self.time(rearrange(x, "b t f d -> (b f) t d")), "(b f) t d -> b t f d", b=b)
        return x


def block_stack(
    n: int, dim: int, heads: int, attn_dim: int, ffn_hidden: int, kernel: int, groups: int
) -> nn.ModuleList:
    """`n` identically configured blocks."""
    return nn.ModuleList(
        TFLocoformerBlock(dim, heads, attn_dim, ffn_hidden, kernel, groups) for _ in range(n)
    )
