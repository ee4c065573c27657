"""Training data loader throughput: clips per second delivered with 0, 1 and 2 workers.

Clips are 4 s at 16 kHz cut from 44.1 kHz stereo WAV files (so every clip is decoded from the
middle of a file, down-mixed and resampled). Three loaders: plain clips, MixIT mixtures of
mixtures (2 clips per example) and TUSS dynamic mixing (N = 2-4 clips per example, backgrounds
sometimes built from several clips; counted as the clips actually cut).

Run from the repository root: ``python -m benchmarks.data`` (``--no-write`` to only print).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from benchmarks.report import BENCHMARKS_MD, machine_description, markdown_table, write_section
from wildsep.data import (
    ClipConfig,
    ClipDataset,
    DynamicMixingConfig,
    DynamicMixingDataset,
    FixedNumSourcesBatchSampler,
    MixtureOfMixturesDataset,
    ResumableBatchSampler,
    build_corpus_index,
    collate_clips,
    collate_dynamic_mixing,
    collate_mixture_of_mixtures,
)
from wildsep.data.config import TUSS_CLASSES

SOURCE_RATE, FILE_SECONDS, FILES_PER_CLASS = 44100, 30.0, 6
CLIPS = ClipConfig(sample_rate=16000, duration=4.0)
BATCH_CLIPS = 16  # clips per batch for every loader, so batches cost about the same


def write_corpus(root: Path) -> Path:
    """44.1 kHz stereo 16-bit WAV files: band-limited noise with pauses, in class folders."""
    rng = np.random.default_rng(0)
    frames = int(SOURCE_RATE * FILE_SECONDS)
    for c in TUSS_CLASSES:
        (root / c).mkdir(parents=True)
        for i in range(FILES_PER_CLASS):
            x = 0.1 * rng.standard_normal((frames, 2))
            gate = np.repeat(
                rng.random(int(FILE_SECONDS * 4)) < 0.8, frames // int(FILE_SECONDS * 4)
            )
            x[: len(gate)] *= gate[:, None]
            sf.write(root / c / f"{i}.wav", x.astype(np.float32), SOURCE_RATE, subtype="PCM_16")
    return root


def throughput(
    make_loader: Callable[[int], DataLoader],
    clips_in: Callable[[object], int],
    workers: int,
    batches: int,
) -> float:
    """Clips per second over `batches` batches, after the workers have started and warmed up."""
    loader = make_loader(workers)
    iterator = (batch for _ in itertools.count() for batch in loader)  # epoch after epoch
    for _ in range(2 + 2 * workers):  # start-up and the first prefetched batches
        next(iterator)
    clips, start = 0, time.perf_counter()
    for batch in itertools.islice(iterator, batches):
        clips += clips_in(batch)
    return clips / (time.perf_counter() - start)


def loaders(index) -> dict[str, tuple[Callable[[int], DataLoader], Callable[[object], int]]]:
    """name → (workers → DataLoader, batch → number of clips it holds)."""
    clips = ClipDataset(index, CLIPS, seed=0)
    mom = MixtureOfMixturesDataset(clips)
    mixing = DynamicMixingDataset(index, DynamicMixingConfig(items_per_epoch=100_000), CLIPS)

    def plain(workers: int) -> DataLoader:
        sampler = ResumableBatchSampler(len(clips), BATCH_CLIPS, drop_last=False)
        return DataLoader(
            clips,
            batch_sampler=sampler,
            collate_fn=collate_clips,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    def mixit(workers: int) -> DataLoader:
        sampler = ResumableBatchSampler(len(mom), BATCH_CLIPS // 2, drop_last=False)
        return DataLoader(
            mom,
            batch_sampler=sampler,
            collate_fn=collate_mixture_of_mixtures,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    def dynamic(workers: int) -> DataLoader:
        sampler = FixedNumSourcesBatchSampler(len(mixing), BATCH_CLIPS // 3, [2, 3, 4])
        return DataLoader(
            mixing,
            batch_sampler=sampler,
            collate_fn=collate_dynamic_mixing,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    def sources(batch: dict) -> int:
        return batch["references"].shape[0] * batch["references"].shape[1]

    return {
        "plain clips": (plain, len),
        "MixIT mixtures of mixtures": (mixit, sources),
        "TUSS dynamic mixing": (dynamic, sources),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20, help="timed batches per setting")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--output", type=Path, default=BENCHMARKS_MD, help="markdown to update")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_corpus(Path(tmp) / "pools")
        index = build_corpus_index(
            root, class_from_folder=True, cache_dir=Path(tmp) / "cache", progress=False
        )
        for name, (make, count) in loaders(index).items():
            rates = [throughput(make, count, w, args.batches) for w in (0, 1, 2)]
            rows.append([name, *(f"{r:.0f}" for r in rates)])
            print(name, [round(r) for r in rates], flush=True)

    header = ["loader (4 s @ 16 kHz from 44.1 kHz stereo WAV)", "0 workers", "1 worker"]
    table = markdown_table([*header, "2 workers"], rows)
    body = (
        "## Data loading (`python -m benchmarks.data`)\n\n"
        f"Clips per second delivered by the training data loaders; {machine_description()}.\n"
        "Dynamic mixing counts the sources of each mixture (backgrounds built on the fly cut "
        "extra clips that are not counted). Target: at least 300 plain clips/s with 2 workers "
        "on 2 cores.\n\n" + table
    )
    print(body)
    if not args.no_write:
        write_section("data", body, args.output)


if __name__ == "__main__":
    main()
