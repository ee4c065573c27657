"""Checkpoint directories: exact round trips, safetensors + JSON only, clear errors."""

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from wildsep.models import TUSS, Backbone, Demucs, PretrainedModel, TFLocoformer, load_pretrained
from wildsep.models.pretrained import CheckpointError

Small = Callable[..., PretrainedModel]


@pytest.mark.parametrize(
    ("name", "overrides", "cls"),
    [
        ("locoformer-s", {}, TFLocoformer),
        ("backbone-medium", {"mixture_consistency": True, "n_outputs": 3}, Backbone),
        ("tuss-large", {"encoder": "sfc"}, TUSS),
        ("demucs", {"audio_channels": 1, "n_outputs": 3, "sources": ()}, Demucs),
    ],
)
def test_round_trip_reproduces_outputs_exactly(
    small: Small,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    overrides: dict[str, object],
    cls: type,
) -> None:
    model = small(name, **overrides).eval()
    if isinstance(model, TUSS):
        model.add_prompts(["piano"])  # the grown prompt table and name list survive too
    args = (["piano", "speech", "piano"],) if isinstance(model, TUSS) else ()
    mix = torch.randn(2, 1234)
    expected = model(mix, *args)
    model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert meta["class"] == cls.__name__

    def no_unpickling(*args: object, **kwargs: object) -> None:
        raise AssertionError("loading must not unpickle")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(torch, "load", no_unpickling)
    loaded = load_pretrained(tmp_path / "ckpt").eval()
    assert type(loaded) is cls
    assert loaded.config == model.config
    torch.testing.assert_close(loaded(mix, *args), expected, atol=0, rtol=0)
    assert type(cls.from_pretrained(tmp_path / "ckpt")) is cls


def test_loading_errors_are_explicit(small: Small, tmp_path: Path) -> None:
    small("backbone-medium").save_pretrained(tmp_path / "backbone")
    with pytest.raises(ValueError, match="holds a Backbone, not a TUSS"):
        TUSS.from_pretrained(tmp_path / "backbone")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_pretrained(tmp_path / "nowhere")
    meta_path = tmp_path / "backbone" / "config.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "class": "os.system"}))
    with pytest.raises(ValueError, match=r"unknown model class 'os\.system'"):
        load_pretrained(tmp_path / "backbone")
    meta_path.write_text(json.dumps({**meta, "config": {**meta["config"], "extra": 1}}))
    with pytest.raises(ValueError, match="unknown BackboneConfig fields \\['extra'\\]"):
        load_pretrained(tmp_path / "backbone")
