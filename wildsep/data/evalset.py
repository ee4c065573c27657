"""Fixed validation/test sets: mixtures with their reference sources and classes.

A set is a JSON-lines manifest, one object per mixture (paths relative to the manifest)::

    {"mixture": "mix_0000/mixture.wav", "references": ["mix_0000/s0.wav", ...],
     "classes": ["speech", ...]}

``mixture`` may be omitted, in which case it is the sum of the references.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

from wildsep.data.audio_io import load_audio
from wildsep.data.clips import as_tensor


class EvalSetDataset(Dataset):
    """Item i: ``{"mixture": ([C,] T), "references": (N, [C,] T), "classes": list[str],
    "name": str}`` at `sample_rate`, with ``channels`` as in :class:`wildsep.data.ClipConfig`
    ('mono', 'first' or 'stereo')."""

    def __init__(
        self, manifest: str | os.PathLike, sample_rate: int, *, channels: str = "mono"
    ) -> None:
        path = Path(manifest).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"evaluation manifest {path} does not exist")
        if channels == "random":
            raise ValueError("evaluation sets are fixed: use channels 'mono', 'first' or 'stereo'")
        self.root = path.parent
        self.sample_rate = sample_rate
        self.channels = channels
        self.rows: list[dict[str, Any]] = []
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from None
                refs, classes = row.get("references"), row.get("classes")
                if not refs or classes is None or len(refs) != len(classes):
                    raise ValueError(
                        f"{path}:{number}: needs non-empty 'references' and 'classes' lists of "
                        f"equal length (optional 'mixture'); got keys {sorted(row)}"
                    )
                self.rows.append(row)
        if not self.rows:
            raise ValueError(f"evaluation manifest {path} lists no mixtures")

    def __len__(self) -> int:
        return len(self.rows)

    def _load(self, relative: str) -> torch.Tensor:
        audio = load_audio(self.root / relative, self.sample_rate, channels=self.channels)
        return as_tensor(audio)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.rows[i]
        refs = [self._load(p) for p in row["references"]]
        length = max(r.shape[-1] for r in refs)
        references = torch.stack([F.pad(r, (0, length - r.shape[-1])) for r in refs])
        if row.get("mixture"):
            mixture = self._load(row["mixture"])
            mixture = F.pad(mixture, (0, max(0, length - mixture.shape[-1])))[..., :length]
        else:
            mixture = references.sum(0)
        name = Path(row.get("mixture") or row["references"][0]).parent.as_posix()
        return {
            "mixture": mixture,
            "references": references,
            "classes": list(row["classes"]),
            "name": row.get("name", name),
        }


def collate_eval(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Zero-pad to the longest item and the largest N: mixture (B, [C,] T), references
    (B, N, [C,] T), ``lengths`` (B,) in samples, ``classes`` list[list[str]] (unpadded), and
    ``names``. Padded reference slots are silent; evaluation skips silent references."""
    length = max(item["mixture"].shape[-1] for item in items)
    count = max(item["references"].shape[0] for item in items)

    def pad(x: torch.Tensor, n: int | None = None) -> torch.Tensor:
        x = F.pad(x, (0, length - x.shape[-1]))
        if n is None:
            return x
        return torch.cat([x, x.new_zeros((n - x.shape[0], *x.shape[1:]))])

    return {
        "mixture": torch.stack([pad(item["mixture"]) for item in items]),
        "references": torch.stack([pad(item["references"], count) for item in items]),
        "lengths": torch.tensor([item["mixture"].shape[-1] for item in items]),
        "classes": [item["classes"] for item in items],
        "names": [item["name"] for item in items],
    }
