"""Small versions of every preset, so that forward passes take milliseconds on a CPU."""

from collections.abc import Callable

import pytest
import torch

from wildsep.models import PretrainedModel, from_preset

_LOCOFORMER = dict(n_fft=64, hop=16, dim=16, n_blocks=1, attn_dim=16, ffn_hidden=16)
_SEPARATOR = dict(
    sample_rate=8000,
    n_fft=128,
    hop=32,
    dim=16,
    cross_blocks=1,
    cross_attn_dim=32,
    cross_ffn_hidden=24,
    tse_blocks=1,
    tse_attn_dim=16,
    tse_ffn_hidden=24,
    mask_mlp_ratio=2,
)
_DEMUCS = dict(channels=4, depth=3)
# Each preset keeps its own heads, groups, kernel and block structure; only sizes shrink.
SMALL: dict[str, dict[str, object]] = {
    "locoformer-s": _LOCOFORMER,
    "locoformer-m": _LOCOFORMER,
    "backbone-medium": _SEPARATOR,
    "backbone-large": _SEPARATOR,
    "tuss-medium": _SEPARATOR,
    "tuss-large": _SEPARATOR,
    "demucs": _DEMUCS,
    "demucs-small": _DEMUCS,
}


@pytest.fixture
def small() -> Callable[..., PretrainedModel]:
    """`small(name, **overrides)`: a seeded, shrunken preset."""

    def build(name: str, seed: int = 0, **overrides: object) -> PretrainedModel:
        torch.manual_seed(seed)
        return from_preset(name, **{**SMALL[name], **overrides})

    return build
