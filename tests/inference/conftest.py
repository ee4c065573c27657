"""Tiny exported models for the inference tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wildsep.models import from_preset

from .fakes import TINY, Identity


@pytest.fixture
def identity() -> Identity:
    """A fresh `Identity` fake at 8 kHz."""
    return Identity()


@pytest.fixture(scope="session")
def tuss_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny TUSS (the paper's eight prompts) exported as a checkpoint folder."""
    torch.manual_seed(0)
    return from_preset("tuss-medium", **TINY).save_pretrained(tmp_path_factory.mktemp("tuss"))


@pytest.fixture(scope="session")
def backbone_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny unconditional backbone with three outputs, exported."""
    torch.manual_seed(0)
    model = from_preset("backbone-medium", n_outputs=3, **TINY)
    return model.save_pretrained(tmp_path_factory.mktemp("backbone"))


@pytest.fixture(scope="session")
def demucs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny stereo Demucs at 8 kHz (four named stems), exported."""
    torch.manual_seed(0)
    model = from_preset("demucs-small", sample_rate=8000, channels=4, depth=3)
    return model.save_pretrained(tmp_path_factory.mktemp("demucs"))
