"""The model blocks as they were before the CPU speed-up (commit 9e13b28), kept as the baseline
that `benchmarks/models.py --speedup` times side by side with today's blocks in one process.

Each class subclasses today's block and overrides only `forward`, so it has the same parameters
and buffers: :func:`as_baseline` turns a built model into the old implementation with the same
weights, and `tests/models/test_speedup.py` checks the two agree within float tolerance.
Used only by benchmarks and tests; not part of the library.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from wildsep.models.bands import BandMaskDecoder
from wildsep.models.layers import ConvSwiGLU, MultiHeadSelfAttention, RMSGroupNorm, RotaryEmbedding


class BaselineRMSGroupNorm(RMSGroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = rearrange(x.float(), "... (g c) -> ... g c", g=self.groups)
        x = x / (x.square().mean(-1, keepdim=True).sqrt() + self.eps)
        return rearrange(x, "... g c -> ... (g c)") * self.weight.float()


class BaselineConvSwiGLU(ConvSwiGLU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.conv(rearrange(x, "n l d -> n d l")).chunk(2, dim=1)
        return rearrange(self.deconv(value * F.silu(gate)), "n d l -> n l d")


class BaselineRotaryEmbedding(RotaryEmbedding):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(x.shape[-2], device=x.device, dtype=torch.float32)
        angle = torch.outer(pos, self.inv_freq).repeat(1, 2)
        cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
        first, second = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-second, first), dim=-1) * sin


class BaselineMultiHeadSelfAttention(MultiHeadSelfAttention):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "n l (three h e) -> three n h l e", three=3, h=self.heads)
        y = F.scaled_dot_product_attention(self.rope(q), self.rope(k), v)
        return self.out(rearrange(y, "n h l e -> n l (h e)"))


class BaselineBandMaskDecoder(BandMaskDecoder):
    def project(self, h: torch.Tensor) -> torch.Tensor:
        out = torch.einsum("btqh,qwho->btqwo", h, self.layout.pad(self.weight))
        return out.flatten(2, 3)[:, :, self.layout.unpad]


BASELINES: dict[type[nn.Module], type[nn.Module]] = {
    RMSGroupNorm: BaselineRMSGroupNorm,
    ConvSwiGLU: BaselineConvSwiGLU,
    RotaryEmbedding: BaselineRotaryEmbedding,
    MultiHeadSelfAttention: BaselineMultiHeadSelfAttention,
    BandMaskDecoder: BaselineBandMaskDecoder,
}


def as_baseline(model: nn.Module) -> nn.Module:
    """A deep copy of `model` (same weights) whose blocks run the baseline implementation."""
    model = copy.deepcopy(model)
    for module in model.modules():
        baseline = BASELINES.get(type(module))
        if baseline is not None:
            module.__class__ = baseline
    return model
