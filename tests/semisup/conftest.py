"""Synthetic tracks with known silent spans, and a band-energy detector to mine them with."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from wildsep.models import PresenceClassifier, PresenceConfig

RATE = 8000


class BandDetector(PresenceClassifier):
    """A presence "classifier" that needs no training: class `low` is energy below 500 Hz,
    `high` energy above 2 kHz; P(present) = sigmoid(dB of the loudest frame in the window).
    Mining with it tests the miner's bookkeeping (windows, segments, offsets, thresholds,
    resume), not a learned model."""

    def __init__(self) -> None:
        super().__init__(
            PresenceConfig(
                classes=["low", "high"],
                sample_rate=RATE,
                n_mels=8,
                channels=4,
                conv_blocks=1,
                dim=4,
                context_blocks=1,
            )
        )
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        spec = torch.stft(x, c.n_fft, c.hop, window=self.window, return_complex=True).abs() ** 2
        freqs = torch.linspace(0, c.sample_rate / 2, spec.shape[1])
        bands = torch.stack([spec[:, freqs < 500].sum(1), spec[:, freqs > 2000].sum(1)], 1)
        loudest = F.max_pool1d(bands, c.window // c.hop, c.window_hop // c.hop)
        logits = 10 * torch.log10(loudest + 1e-12)  # (B, 2, W')
        return logits[..., : c.num_windows(x.shape[-1])].transpose(1, 2)

    def probabilities(self, x: torch.Tensor, chunk_seconds: float = 60.0) -> torch.Tensor:
        self.calls += 1
        return super().probabilities(x, chunk_seconds)


def write_band_tracks(folder: Path, tracks: int = 4, seconds: float = 12.0, seed: int = 0) -> Path:
    """Tracks of low (200 Hz) and high (3 kHz) tone bursts at known spans over a −50 dBFS
    floor, every other one 16 kHz stereo (the miner reads at 8 kHz); `truth.jsonl` in the
    `write_truth_corpus` format."""
    rng = np.random.default_rng(seed)
    (folder / "tracks").mkdir(parents=True, exist_ok=True)
    rows = []
    for t in range(tracks):
        rate = 16000 if t % 2 else RATE
        n = round(seconds * rate)
        time = np.arange(n) / rate
        mix = 3e-3 * rng.standard_normal(n)  # −50 dBFS: quiet, yet above the silence cut
        active = {"low": [], "high": []}
        for name in active:
            for _ in range(int(rng.integers(1, 4))):
                start, length = rng.uniform(0, seconds - 1), rng.uniform(0.3, 3.0)
                a, b = round(start * rate), min(n, round((start + length) * rate))
                if name == "low":
                    burst = 0.1 * np.sin(2 * np.pi * 200 * time[a:b])
                else:
                    burst = 0.05 * np.sin(2 * np.pi * 3000 * time[a:b])
                fade = np.minimum(1.0, np.minimum(np.arange(b - a), np.arange(b - a)[::-1]) / 160)
                mix[a:b] += burst * fade  # 20 ms ramps: no broadband clicks at the edges
                active[name].append([a / rate, b / rate])
        audio = np.stack([mix, 0.5 * mix], 1) if t % 2 else mix
        rel = f"tracks/track_{t}.wav"
        sf.write(folder / rel, audio.astype(np.float32), rate)
        rows.append({"path": rel, "seconds": seconds, "active": active})
    (folder / "truth.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture
def band_tracks(tmp_path: Path) -> Path:
    return write_band_tracks(tmp_path / "corpus")


@pytest.fixture
def detector() -> BandDetector:
    return BandDetector().eval()


@pytest.fixture
def detector_class() -> type[BandDetector]:
    return BandDetector
