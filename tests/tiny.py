"""The tiny separator geometry shared by the recipe, inference and semi-supervised tests: 8 kHz,
D=16, one cross-prompt and one TSE block — fast on CPU, same layout as the real presets —
and a stand-in model for the objective tests."""

import torch

TINY_SEPARATOR = dict(
    sample_rate=8000,
    n_fft=128,
    hop=64,
    dim=16,
    heads=2,
    groups=4,
    cross_blocks=1,
    cross_attn_dim=16,
    cross_ffn_hidden=32,
    tse_blocks=1,
    tse_attn_dim=16,
    tse_ffn_hidden=32,
)


def model_overrides(prefix: str = "model.overrides.") -> list[str]:
    """The geometry as recipe command-line overrides."""
    return [f"{prefix}{key}={value}" for key, value in TINY_SEPARATOR.items()]


class FixedOutputs(torch.nn.Module):
    """A "model" whose outputs are a parameter, so gradients w.r.t. each output can be read;
    it ignores its inputs (a mixture, and prompts for a prompted objective)."""

    def __init__(self, outputs: torch.Tensor):
        super().__init__()
        self.outputs = torch.nn.Parameter(outputs.clone())

    def forward(self, mixture: torch.Tensor, *prompts) -> torch.Tensor:
        return self.outputs
