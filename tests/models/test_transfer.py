"""Backbone → TUSS initialisation: exact copies, the derived decoder, geometry checks."""

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from wildsep.models import TUSS, PretrainedModel, transfer_backbone

Small = Callable[..., PretrainedModel]


def _tuss_name(backbone_name: str, n_cross: int) -> str:
    if not backbone_name.startswith("blocks."):
        return backbone_name
    _, i, rest = backbone_name.split(".", 2)
    i = int(i)
    return f"cross_blocks.{i}.{rest}" if i < n_cross else f"tse_blocks.{i - n_cross}.{rest}"


@pytest.mark.parametrize("encoder", ["bandsplit", "sfc"])
@pytest.mark.parametrize("decoder_init", ["mean", 2])
def test_from_backbone_copies_every_mapped_tensor_exactly(
    small: Small,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    encoder: str,
    decoder_init: str | int,
) -> None:
    # Two blocks of each kind, so the index shift of the TSE blocks is exercised.
    backbone = small(
        "backbone-medium", seed=1, encoder=encoder, n_outputs=3, cross_blocks=2, tse_blocks=2
    )
    backbone.save_pretrained(tmp_path / "backbone")
    with caplog.at_level(logging.INFO, logger="wildsep.models.tuss"):
        tuss, table = TUSS.from_backbone(
            tmp_path / "backbone", decoder_init=decoder_init, prompts=("speech", "sfx")
        )
    assert "copied" in caplog.text and "prompt_embeddings" in caplog.text
    assert tuss.config.prompts == ("speech", "sfx")
    assert tuss.config.geometry() == backbone.config.geometry()

    source, target = backbone.state_dict(), tuss.state_dict()
    derived = set(table.names("derived"))
    assert derived and all(name.startswith("decoder.") for name in derived)
    assert set(table.names("new")) == {"prompt_embeddings", "sos"}
    assert table.names("skipped") == []
    assert len(table.names("copied")) + len(derived) == len(source)
    for name, value in source.items():
        mapped = target[_tuss_name(name, n_cross=2)]
        if _tuss_name(name, 2) in derived:
            # The head's output axis is laid out as (output m = 3, 4 values): reduce over m.
            axis = next(
                i for i, (a, b) in enumerate(zip(value.shape, mapped.shape, strict=True)) if a != b
            )
            slices = value.unflatten(axis, (3, 4))
            want = slices.mean(axis) if decoder_init == "mean" else slices.select(axis, 2)
            torch.testing.assert_close(mapped, want, atol=1e-7, rtol=1e-6)
        else:
            assert torch.equal(mapped, value), name
    assert "tse_blocks.1.time.attn.qkv.weight" in table.names("copied")
    assert str(table).splitlines()[-1] == (
        f"{len(source) - len(derived)} copied, {len(derived)} derived, 2 new, 0 skipped"
    )


def test_derived_decoder_equals_backbone_output_when_slice_is_taken(small: Small) -> None:
    """With decoder_init=m the TUSS decoder is exactly the backbone's m-th output head."""
    backbone = small("backbone-medium", n_outputs=3)
    tuss = small("tuss-medium", prompts=("speech",))
    transfer_backbone(backbone, tuss, decoder_init=1)
    z = torch.randn(2, 6, backbone.decoder.layout.n_bands, backbone.config.dim)
    torch.testing.assert_close(tuss.decoder(z)[:, 0], backbone.decoder(z)[:, 1])


@pytest.mark.parametrize(
    ("override", "fields"),
    [
        ({"sample_rate": 16000}, ["sample_rate: backbone has 8000, TUSS has 16000", "bands:"]),
        ({"n_fft": 256}, ["n_fft: backbone has 128, TUSS has 256", "bands:"]),
        ({"dim": 32}, ["dim: backbone has 16, TUSS has 32"]),
        ({"tse_blocks": 3}, ["tse_blocks: backbone has 1, TUSS has 3"]),
    ],
)
def test_incompatible_geometry_is_rejected_by_name(
    small: Small, tmp_path: Path, override: dict[str, int], fields: list[str]
) -> None:
    small("backbone-medium").save_pretrained(tmp_path / "backbone")
    with pytest.raises(ValueError, match="does not fit") as error:
        TUSS.from_backbone(tmp_path / "backbone", **override)
    for field in fields:
        assert field in str(error.value)
    with pytest.raises(ValueError, match=next(iter(override))):
        transfer_backbone(small("backbone-medium"), small("tuss-medium", **override))


def test_from_backbone_refuses_other_checkpoints(small: Small, tmp_path: Path) -> None:
    small("tuss-medium").save_pretrained(tmp_path / "tuss")
    with pytest.raises(ValueError, match="not a Backbone"):
        TUSS.from_backbone(tmp_path / "tuss")
    small("backbone-medium").save_pretrained(tmp_path / "backbone")
    with pytest.raises(ValueError, match="decoder_init"):
        TUSS.from_backbone(tmp_path / "backbone", decoder_init=8)
