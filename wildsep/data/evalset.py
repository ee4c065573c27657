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


def write_single_source_set(
    sources: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    per_class: int = 20,
    seconds: float = 6.0,
    sample_rate: int = 16000,
    seed: int = 0,
    silence_threshold_db: float = -50.0,
) -> Path:
    """Write a set of single-source examples (FUSS SS) from class folders of isolated sources.

    `sources` holds ``<class>/*`` audio files (e.g. a test split's source pools). For each
    class, `per_class` files are drawn (keyed on `seed`), each cropped to `seconds` at a random
    offset (shorter files are zero-padded) avoiding crops quieter than `silence_threshold_db`
    RMS, and written as ``single_NNNN/s0_<class>.wav`` with ``mixture.wav`` equal to it (float
    WAV at `sample_rate`), listed in ``out_dir/single.jsonl``. `out_dir` must be new or empty:
    nothing is ever written next to the sources.
    """
    import numpy as np
    import soundfile as sf

    from wildsep.data.audio_io import AUDIO_EXTENSIONS

    root, out = Path(sources).expanduser().resolve(), Path(out_dir).expanduser().resolve()
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise FileNotFoundError(f"{root} holds no class folders (<class>/*.wav)")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: choose a new folder for the set")
    length = round(seconds * sample_rate)
    rows = []
    for c, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        rng = np.random.default_rng([seed, c])
        picked = 0
        for index in rng.permutation(len(files)):
            if picked == per_class:
                break
            audio = load_audio(files[index], sample_rate)[0]
            if len(audio) < length:
                audio = np.pad(audio, (0, length - len(audio)))
            crops = [int(s) for s in rng.integers(0, len(audio) - length + 1, 8)]
            levels = [np.sqrt(np.mean(audio[s : s + length] ** 2) + 1e-20) for s in crops]
            best = int(np.argmax(levels))
            if 20 * np.log10(levels[best]) < silence_threshold_db:
                continue
            crop = audio[crops[best] : crops[best] + length].astype(np.float32)
            crop *= 0.1 / levels[best]  # −20 dBFS RMS
            folder = f"single_{len(rows):04d}"
            (out / folder).mkdir(parents=True)
            for file_name in (f"s0_{name}.wav", "mixture.wav"):
                sf.write(out / folder / file_name, crop, sample_rate, subtype="FLOAT")
            rows.append(
                {
                    "mixture": f"{folder}/mixture.wav",
                    "references": [f"{folder}/s0_{name}.wav"],
                    "classes": [name],
                    "source": str(files[index].relative_to(root)),
                }
            )
            picked += 1
    with open(out / "single.jsonl", "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    return out / "single.jsonl"


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m wildsep.data.evalset",
        description="Build a single-source evaluation set (FUSS SS) from class folders.",
    )
    parser.add_argument("sources", help="folder of <class>/ subfolders of isolated sources")
    parser.add_argument("out_dir", help="new or empty folder for the set")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        path = write_single_source_set(
            args.sources,
            args.out_dir,
            per_class=args.per_class,
            seconds=args.seconds,
            sample_rate=args.sample_rate,
            seed=args.seed,
        )
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
