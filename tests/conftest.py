"""Fixtures shared by every test package."""

from pathlib import Path

import pytest

from wildsep.data.demo import generate


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny demo corpus (``size="small"``, 16 kHz, seed 0), generated once per session."""
    return generate(tmp_path_factory.mktemp("demo") / "corpus", size="small", num_workers=1)
