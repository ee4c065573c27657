"""TF-Locoformer (Saijo et al., 2024): a TF-domain dual-path Transformer on STFT bins."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from wildsep.models.block import block_stack
from wildsep.models.config import LocoformerConfig
from wildsep.models.pretrained import PretrainedModel
from wildsep.models.stft import STFT


class TFLocoformer(PretrainedModel):
    """STFT → Conv2d(2→D, 3×3) + GroupNorm → L blocks → ConvTranspose2d(D→2S, 3×3) → iSTFT.

    Direct mapping: the decoder outputs the S source spectra themselves, not masks.
    """

    config_class = LocoformerConfig

    def __init__(self, config: LocoformerConfig) -> None:
        super().__init__(config)
        c = config
        self.stft = STFT(c.n_fft, c.hop, c.window, c.normalize)
        self.encoder = nn.Conv2d(2, c.dim, 3, padding=1)
        self.encoder_norm = nn.GroupNorm(1, c.dim)
        self.blocks = block_stack(
            c.n_blocks, c.dim, c.heads, c.attn_dim, c.ffn_hidden, c.kernel, c.groups
        )
        self.decoder = nn.ConvTranspose2d(c.dim, 2 * c.n_sources, 3, padding=1)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix: (B, T) → estimated sources (B, S, T), float32."""
        spec, scale = self.stft(mix)  # (B, T', F, 2)
        z = self.encoder(rearrange(spec, "b t f c -> b c t f"))
        with torch.autocast(z.device.type, enabled=False):
            z = self.encoder_norm(z.float())
        z = rearrange(z, "b d t f -> b t f d")
        for block in self.blocks:
            z = block(z)
        out = self.decoder(rearrange(z, "b t f d -> b d t f"))
        out = rearrange(out, "b (s c) t f -> b s t f c", c=2)
        return self.stft.inverse(out, scale, mix.shape[-1])
