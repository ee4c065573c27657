"""Fake corpus trees in the real corpora's layouts (file and folder names, metadata files,
sample rates, channel counts), with tiny audio, and readers for what `prepare` writes."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SECONDS = 0.05  # every fake file: 50 ms, enough for a header and a non-silent signal


class Tree:
    """Builds a fake corpus under `root`; `wav` writes noise (seeded by the path)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def wav(
        self,
        relative: str,
        rate: int,
        channels: int = 1,
        seconds: float = SECONDS,
        audio: np.ndarray | None = None,
        **kwargs,
    ) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if audio is None:
            rng = np.random.default_rng(sum(relative.encode()) + len(relative))
            audio = (0.1 * rng.standard_normal((round(seconds * rate), channels))).astype(
                np.float32
            )
        sf.write(str(path), audio, rate, **kwargs)
        return path

    def text(self, relative: str, content: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        return path

    def corrupt(self, relative: str) -> Path:
        """A file with an audio name that is not audio (a failed download)."""
        return self.text(relative, "<html>404 Not Found</html>")

    def fingerprint(self) -> dict[str, tuple[int, int]]:
        """Every file under root with its size and modification time."""
        return {
            str(p.relative_to(self.root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(self.root.rglob("*"))
            if p.is_file()
        }


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "corpus")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rel(path: str, root: Path) -> str:
    """An output path relative to the fake corpus, for readable assertions."""
    return os.path.relpath(path, root.resolve())
