"""Model configurations: plain dataclasses, stored as JSON next to the weights."""

from __future__ import annotations

from dataclasses import dataclass, fields

from wildsep.models.stft import WINDOWS

# The eight prompts of the TUSS paper.
PAPER_PROMPTS: tuple[str, ...] = (
    "speech",
    "sfx",
    "sfxbg",
    "drums",
    "bass",
    "vocals",
    "other",
    "musicbg",
)
ENCODERS = ("bandsplit", "sfc")


def _check_stft(config: LocoformerConfig | SeparatorConfig) -> None:
    if config.window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {config.window!r}")
    if not 0 < config.hop <= config.n_fft // 2:
        raise ValueError(f"hop must be in (0, n_fft/2] for overlap-add, got {config.hop}")


@dataclass
class LocoformerConfig:
    """TF-Locoformer: STFT-bin Conv2d encoder, L blocks, ConvTranspose2d decoder."""

    sample_rate: int = 8000
    n_fft: int = 256
    hop: int = 64
    window: str = "sqrt_hann"
    normalize: bool = True
    n_sources: int = 2
    dim: int = 128
    n_blocks: int = 6
    heads: int = 4
    attn_dim: int = 128
    ffn_hidden: int = 384
    kernel: int = 4
    groups: int = 4

    def __post_init__(self) -> None:
        _check_stft(self)


@dataclass
class SeparatorConfig:
    """What the unconditional backbone and TUSS share: STFT, encoder, block stack, decoder.

    The block stack is `cross_blocks` blocks of attention dim `cross_attn_dim` and FFN hidden
    `cross_ffn_hidden`, then `tse_blocks` blocks of the `tse_*` sizes. Every field is geometry:
    a backbone initialises a TUSS only when all of them agree.
    """

    sample_rate: int = 48000
    n_fft: int = 2048
    hop: int = 512
    window: str = "sqrt_hann"
    normalize: bool = True
    encoder: str = "bandsplit"  # or "sfc": cross-attention spectral feature compression
    dim: int = 64
    heads: int = 4
    groups: int = 8
    kernel: int = 3
    cross_blocks: int = 4
    cross_attn_dim: int = 128
    cross_ffn_hidden: int = 384
    tse_blocks: int = 2
    tse_attn_dim: int = 96
    tse_ffn_hidden: int = 256
    mask_mlp_ratio: int = 4  # mask-decoder MLP width, in multiples of dim
    mask_mlp_layers: int = 2
    sfc_heads: int = 4

    def __post_init__(self) -> None:
        _check_stft(self)
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.mask_mlp_layers < 1:
            raise ValueError(f"mask_mlp_layers must be ≥ 1, got {self.mask_mlp_layers}")

    def geometry(self) -> dict[str, object]:
        """The shared fields, by name."""
        return {f.name: getattr(self, f.name) for f in fields(SeparatorConfig)}


@dataclass
class BackboneConfig(SeparatorConfig):
    """Unconditional separator with M outputs, pre-trained without labels."""

    n_outputs: int = 8
    mixture_consistency: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        # Efficient MixIT (reference §3) trains 32 outputs and more; 64 keeps typos out.
        if not 2 <= self.n_outputs <= 64:
            raise ValueError(f"n_outputs must be in [2, 64], got {self.n_outputs}")


@dataclass
class TUSSConfig(SeparatorConfig):
    """Prompt-conditioned separator; `prompts` names the rows of the prompt table, in order."""

    prompts: tuple[str, ...] = PAPER_PROMPTS

    def __post_init__(self) -> None:
        super().__post_init__()
        self.prompts = tuple(self.prompts)  # JSON gives a list back
        if not self.prompts or len(set(self.prompts)) != len(self.prompts):
            raise ValueError(f"prompts must be non-empty and unique, got {self.prompts}")
