"""Separation models: TF-Locoformer, the unconditional band-split backbone, prompted TUSS and the
Demucs waveform U-Net.

Build one by name with `from_preset`, save with `model.save_pretrained(dir)`, rebuild with
`load_pretrained(dir)`; `TUSS.from_backbone(dir)` initialises TUSS from a pre-trained backbone.
"""

from wildsep.models.backbone import Backbone
from wildsep.models.bands import BandMaskDecoder, BandSplitEncoder, band_widths
from wildsep.models.block import TFLocoformerBlock
from wildsep.models.config import (
    PAPER_PROMPTS,
    BackboneConfig,
    LocoformerConfig,
    SeparatorConfig,
    TUSSConfig,
)
from wildsep.models.demucs import Demucs, DemucsConfig
from wildsep.models.layers import ConvSwiGLU, MultiHeadSelfAttention, RMSGroupNorm, RotaryEmbedding
from wildsep.models.locoformer import TFLocoformer
from wildsep.models.presence import PresenceClassifier, PresenceConfig
from wildsep.models.presets import PAPER_PARAMETERS, PRESETS, from_preset, preset_config
from wildsep.models.pretrained import PretrainedModel, load_pretrained
from wildsep.models.sfc import SFCDecoder, SFCEncoder
from wildsep.models.stft import STFT
from wildsep.models.tuss import TUSS, TransferTable, check_geometry, transfer_backbone

__all__ = [
    "PAPER_PARAMETERS",
    "PAPER_PROMPTS",
    "PRESETS",
    "STFT",
    "TUSS",
    "Backbone",
    "BackboneConfig",
    "BandMaskDecoder",
    "BandSplitEncoder",
    "ConvSwiGLU",
    "Demucs",
    "DemucsConfig",
    "LocoformerConfig",
    "MultiHeadSelfAttention",
    "PresenceClassifier",
    "PresenceConfig",
    "PretrainedModel",
    "RMSGroupNorm",
    "RotaryEmbedding",
    "SFCDecoder",
    "SFCEncoder",
    "SeparatorConfig",
    "TFLocoformer",
    "TFLocoformerBlock",
    "TUSSConfig",
    "TransferTable",
    "band_widths",
    "check_geometry",
    "from_preset",
    "load_pretrained",
    "preset_config",
    "transfer_backbone",
]
