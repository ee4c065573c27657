"""Shared fixtures of the data tests. `demo_corpus` may move up to tests/conftest.py so that
other packages' tests can use the same tiny corpus."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wildsep.data.demo import generate


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny demo corpus (``size="small"``, 16 kHz, seed 0), generated once per session."""
    return generate(tmp_path_factory.mktemp("demo") / "corpus", size="small", num_workers=1)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """An index cache of the test's own, outside every corpus."""
    return tmp_path / "cache"


def _write_noise(
    path: Path, seconds: float = 0.5, sr: int = 16000, channels: int = 1, **kwargs
) -> Path:
    rng = np.random.default_rng(sum(path.name.encode()))
    x = (0.1 * rng.standard_normal((round(seconds * sr), channels))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, sr, **kwargs)
    return path


@pytest.fixture
def write_noise():
    """`write_noise(path, seconds=0.5, sr=16000, channels=1, **soundfile_kwargs) -> path`:
    writes white noise at -20 dBFS RMS."""
    return _write_noise
