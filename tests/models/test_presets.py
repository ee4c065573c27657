"""Presets: parameter counts against the papers, shared geometry, construction errors."""

import pytest
import torch

from wildsep.models import PAPER_PARAMETERS, PRESETS, from_preset


def _count(name: str, **overrides: object) -> int:
    with torch.device("meta"):  # full-size models without allocating their weights
        model = from_preset(name, **overrides)
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_within_3_percent_of_the_papers() -> None:
    counts = {name: _count(name) for name in PRESETS}
    for name, count in counts.items():
        paper = PAPER_PARAMETERS.get(name)
        versus = f"paper {paper / 1e6:.1f}M, {count / paper - 1:+.1%}" if paper else "no figure"
        print(f"{name:16s} {count / 1e6:7.3f}M  ({versus})")
    for name, paper in PAPER_PARAMETERS.items():
        assert abs(counts[name] / paper - 1) < 0.03, (name, counts[name], paper)
    # The paper's unconditional baseline (TUSS-medium stack, 4 outputs) has ≈14.3M.
    assert abs(_count("backbone-medium", n_outputs=4) / 14.3e6 - 1) < 0.03


@pytest.mark.parametrize("size", ["medium", "large"])
def test_backbone_and_tuss_of_a_size_share_every_block_shape(size: str) -> None:
    with torch.device("meta"):
        backbone, tuss = from_preset(f"backbone-{size}"), from_preset(f"tuss-{size}")
    blocks = [p.shape for p in backbone.blocks.parameters()]
    assert blocks == [
        p.shape for p in [*tuss.cross_blocks.parameters(), *tuss.tse_blocks.parameters()]
    ]
    assert [p.shape for p in backbone.encoder.parameters()] == [
        p.shape for p in tuss.encoder.parameters()
    ]


def test_overrides_and_errors() -> None:
    assert _count("tuss-medium", dim=32) < _count("tuss-medium")
    with pytest.raises(ValueError, match="tuss-medium"):
        from_preset("tuss-mediun")
    with pytest.raises(ValueError, match="unknown config fields \\['dims'\\]"):
        from_preset("tuss-medium", dims=32)
    with pytest.raises(ValueError, match="n_outputs"):
        from_preset("backbone-medium", n_outputs=65)
    with pytest.raises(ValueError, match="encoder"):
        from_preset("backbone-medium", encoder="mel")
    with pytest.raises(ValueError, match="unique"):
        from_preset("tuss-medium", prompts=("speech", "speech"))
