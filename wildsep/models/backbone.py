"""The unconditional band-split backbone that pre-training trains, and what it shares with TUSS."""

from __future__ import annotations

import torch
from torch import nn

from wildsep.models.bands import BandMaskDecoder, BandSplitEncoder, band_widths
from wildsep.models.block import block_stack
from wildsep.models.config import BackboneConfig, SeparatorConfig
from wildsep.models.pretrained import PretrainedModel
from wildsep.models.sfc import SFCDecoder, SFCEncoder
from wildsep.models.stft import STFT, complex_mul


def build_codec(config: SeparatorConfig, n_outputs: int) -> tuple[nn.Module, nn.Module]:
    """Encoder (B, T', F, 2) → (B, T', Q, D) and mask decoder (B, T', Q, D) → (B, M, T', F, 2)."""
    widths = band_widths(config.sample_rate, config.n_fft)
    hidden, layers = config.mask_mlp_ratio * config.dim, config.mask_mlp_layers
    if config.encoder == "sfc":
        heads = config.sfc_heads
        return (
            SFCEncoder(widths, config.dim, heads),
            SFCDecoder(widths, config.dim, heads, n_outputs, hidden, layers),
        )
    return BandSplitEncoder(widths, config.dim), BandMaskDecoder(
        widths, config.dim, n_outputs, hidden, layers
    )


def cross_stack(c: SeparatorConfig) -> nn.ModuleList:
    """The blocks that TUSS runs over prompts and frames together (its cross-prompt module)."""
    return block_stack(
        c.cross_blocks, c.dim, c.heads, c.cross_attn_dim, c.cross_ffn_hidden, c.kernel, c.groups
    )


def tse_stack(c: SeparatorConfig) -> nn.ModuleList:
    """The blocks that TUSS runs once per prompt (its conditional TSE module)."""
    return block_stack(
        c.tse_blocks, c.dim, c.heads, c.tse_attn_dim, c.tse_ffn_hidden, c.kernel, c.groups
    )


class Backbone(PretrainedModel):
    """STFT → band encoder → cross-config blocks then TSE-config blocks → M masks → iSTFT.

    The same stack as the TUSS of that size without prompts, so it can initialise one
    (`TUSS.from_backbone`). With `mixture_consistency` the M estimates are projected to sum to
    the mixture: ŝ_m += (x − Σ_k ŝ_k) / M.
    """

    config_class = BackboneConfig

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__(config)
        c = config
        self.stft = STFT(c.n_fft, c.hop, c.window, c.normalize)
        self.encoder, self.decoder = build_codec(c, c.n_outputs)
        self.blocks = nn.ModuleList([*cross_stack(c), *tse_stack(c)])

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix: (B, T) → estimates (B, M, T), float32."""
        spec, scale = self.stft(mix)  # (B, T', F, 2)
        z = self.encoder(spec)
        for block in self.blocks:
            z = block(z)
        est = complex_mul(self.decoder(z), spec[:, None])  # (B, M, T', F, 2), float32
        est = self.stft.inverse(est, scale, mix.shape[-1])
        if self.config.mixture_consistency:
            est = est + (mix[:, None].float() - est.sum(1, keepdim=True)) / est.shape[1]
        return est
