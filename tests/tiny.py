"""The tiny separator geometry shared by the recipe, inference and semi-supervised tests: 8 kHz,
D=16, one cross-prompt and one TSE block — fast on CPU, same layout as the real presets —
and a stand-in model for the objective tests."""

from pathlib import Path

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


def run_overrides(tmp_path: Path, corpus: Path, steps: int = 3, **keys: object) -> list[str]:
    """Command-line overrides shared by the recipe tests: the tiny geometry, 0.5 s clips read
    in the main process, `steps` steps with a log every step and a checkpoint and a validation
    every 2, two 0.5 s validation mixtures of the demo `corpus`, every output under
    `tmp_path`. `keys` add the recipe's own data keys or replace these."""
    base = {
        "run_dir": tmp_path / "run",
        "data.num_workers": 0,
        "data.clips.duration": 0.5,
        "train.max_steps": steps,
        "train.log_every": 1,
        "train.val_every": 2,
        "train.checkpoint_every": 2,
        "validation.manifest": corpus / "valid" / "manifest.jsonl",
        "validation.max_examples": 2,
        "validation.seconds": 0.5,
        **keys,
    }
    return [*model_overrides(), *(f"{k}={v}" for k, v in base.items())]


def pretrain_overrides(tmp_path: Path, corpus: Path, steps: int = 3, **extra: object) -> list[str]:
    """`run_overrides` for `pretrain/run.py` on the demo corpus's unlabeled clips: batches of
    4 mixtures of mixtures, one held-out MoM batch. `extra` adds or replaces keys."""
    return run_overrides(
        tmp_path,
        corpus,
        steps,
        **{
            "data.corpus.source": corpus / "unlabeled",
            "data.corpus.cache_dir": tmp_path / "cache",
            "data.batch_size": 4,
            "stages.0.steps": steps,
            "validation.mom_batches": 1,
            **extra,
        },
    )


class FixedOutputs(torch.nn.Module):
    """A "model" whose outputs are a parameter, so gradients w.r.t. each output can be read;
    it ignores its inputs (a mixture, and prompts for a prompted objective)."""

    def __init__(self, outputs: torch.Tensor):
        super().__init__()
        self.outputs = torch.nn.Parameter(outputs.clone())

    def forward(self, mixture: torch.Tensor, *prompts) -> torch.Tensor:
        return self.outputs
