"""Shared fixtures of the data tests (`demo_corpus` lives in tests/conftest.py)."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


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
