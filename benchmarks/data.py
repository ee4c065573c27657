"""Training data loader throughput: clips per second delivered with 0, 1 and 2 workers.

Clips are 4 s at 16 kHz cut from 44.1 kHz stereo WAV files (so every clip is decoded from the
middle of a file, down-mixed and resampled). Three loaders: plain clips, MixIT mixtures of
mixtures (2 clips per example) and TUSS dynamic mixing (N = 2-4 clips per example, backgrounds
sometimes built from several clips; counted as the clips actually cut).

Run from the repository root: ``python -m benchmarks.data`` (``--no-write`` to only print).

``--scale`` measures corpora of a million files instead: a generated manifest of 100,000 and
1,000,000 rows pointing at a few real files is indexed and streamed (index build time, time to
the first batch, peak resident memory of each step, each in a fresh process), and clips are
streamed from tar shards written from a small corpus. Writes the section ``data-scale``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import itertools
import multiprocessing
import resource
import tempfile
import threading
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
    StreamingClipDataset,
    build_corpus_index,
    collate_clips,
    collate_dynamic_mixing,
    collate_mixture_of_mixtures,
    stream_corpus,
)
from wildsep.data.config import TUSS_CLASSES
from wildsep.data.shards import ShardClipDataset, ShardLoader, write_shards

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


SCALE_ROWS = (100_000, 1_000_000)
REAL_FILES = 8


def write_manifest(root: Path, rows: int) -> Path:
    """A CSV of `rows` paths cycling over the files of `root` (written by `write_corpus`)."""
    files = sorted(str(p) for p in root.rglob("*.wav"))[:REAL_FILES]
    manifest = root.parent / f"manifest-{rows}.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "labels"])
        writer.writerows([files[i % len(files)], f"tag{i % 97}"] for i in range(rows))
    return manifest


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise OSError(f"{field} not in /proc/self/status")


class AnonymousPeak:
    """Peak of the process's anonymous resident memory (heap, not file pages), sampled every
    5 ms in a thread. Memory-mapped Arrow files show up in the resident set as they are read,
    but those pages are the kernel's file cache and are dropped under memory pressure."""

    def __init__(self) -> None:
        self.peak = self.start = _status_mib("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _status_mib("RssAnon"))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _status_mib("RssAnon"))


def _as_if_started_normally() -> None:
    """A process started by "spawn" would spawn its DataLoader workers too (2 s of imports
    each); a training script started from a shell forks them, as here."""
    multiprocessing.set_start_method("fork", force=True)
    torch.set_num_threads(1)


def first_batch(loader) -> None:
    iterator = iter(loader)
    next(iterator)
    del iterator  # shuts the workers down now, not at interpreter exit


def scale_step(step: str, manifest: Path, cache: Path) -> dict[str, float]:
    """One measured step, in a fresh process: index build, or loader set-up to first batch."""
    _as_if_started_normally()
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS (VmHWM) := current RSS
    baseline = _status_mib("VmRSS")
    anonymous = AnonymousPeak()
    start = time.perf_counter()
    options = dict(cache_dir=cache, validate_audio=False)
    if step == "index":
        index = build_corpus_index(manifest, num_proc=2, progress=False, **options)
        assert len(index) == int(manifest.stem.split("-")[1])
    elif step == "indexed":  # cached index → clips → first batch with 2 workers
        index = build_corpus_index(manifest, progress=False, **options)
        clips = ClipDataset(index, CLIPS, seed=0)
        sampler = ResumableBatchSampler(len(clips), BATCH_CLIPS)
        loader = DataLoader(clips, batch_sampler=sampler, collate_fn=collate_clips, num_workers=2)
        first_batch(loader)
    else:  # streaming: manifest → sharded iterable dataset → first batch with 2 workers
        stream = stream_corpus(manifest, shuffle_seed=0, **options)
        clips = StreamingClipDataset(stream, CLIPS, seed=0)
        first_batch(DataLoader(clips, batch_size=BATCH_CLIPS, num_workers=2))
    seconds = time.perf_counter() - start
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "baseline": baseline,
        "own": _status_mib("VmHWM"),
        "anon_start": anonymous.start,
        "anon": anonymous.stop(),
        "child": child,
    }


SHARD_FILES, SHARD_FILE_SECONDS, SHARD_SIZE = 1200, 4.5, 100


def shard_throughput(tmp: Path, batches: int) -> dict[str, float]:
    """Write tar shards from a corpus of short 44.1 kHz stereo files, then clips/s streamed
    from them (one epoch covers the measurement: ShardLoader starts workers once per epoch)."""
    _as_if_started_normally()
    rng = np.random.default_rng(1)
    root = tmp / "short"
    root.mkdir()
    for i in range(SHARD_FILES):
        x = 0.1 * rng.standard_normal((int(SOURCE_RATE * SHARD_FILE_SECONDS), 2))
        sf.write(root / f"{i:05d}.wav", x.astype(np.float32), SOURCE_RATE, subtype="PCM_16")
    start = time.perf_counter()
    shards = write_shards(
        root, tmp / "shards", samples_per_shard=SHARD_SIZE, progress=False,
        cache_dir=tmp / "cache", validate_audio=False,
    )  # fmt: skip
    write_seconds = time.perf_counter() - start
    dataset = ShardClipDataset(shards, CLIPS, report_path=tmp / "shard-report.csv")
    start = time.perf_counter()
    iterator = (
        b for _ in itertools.count() for b in ShardLoader(dataset, BATCH_CLIPS, num_workers=2)
    )
    next(iterator)
    first = time.perf_counter() - start
    for _ in range(4):
        next(iterator)
    clips, start = 0, time.perf_counter()
    for batch in itertools.islice(iterator, batches):
        clips += len(batch)
    return {
        "shards": len(shards),
        "write": write_seconds,
        "first": first,
        "rate": clips / (time.perf_counter() - start),
    }


def scale(args: argparse.Namespace) -> None:
    spawn = multiprocessing.get_context("spawn")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_corpus(Path(tmp) / "pools")
        for n in args.rows:
            manifest = write_manifest(root, n)
            for step in ("index", "indexed", "streaming"):
                with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
                    r = pool.submit(scale_step, step, manifest, Path(tmp) / f"cache-{n}").result()
                name = {
                    "index": "build the index (header probe, 2 processes)",
                    "indexed": "cached index → ClipDataset → first batch (2 workers)",
                    "streaming": "stream_corpus → StreamingClipDataset → first batch (2 workers)",
                }[step]
                rows.append(
                    [
                        f"{n:,}",
                        name,
                        f"{r['seconds']:.1f}",
                        f"{r['baseline']:.0f} → {r['own']:.0f}",
                        f"{r['anon_start']:.0f} → {r['anon']:.0f}",
                        f"{r['child']:.0f}",
                    ]
                )
                print(" | ".join(rows[-1]), flush=True)
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
            shard = pool.submit(shard_throughput, Path(tmp), args.batches).result()
    header = ["manifest rows", "step", "time (s)", "RSS after imports → peak (MiB)"]
    header += ["of which heap (MiB)", "largest child peak (MiB)"]
    body = (
        "## Corpora of a million files (`python -m benchmarks.data --scale`)\n\n"
        f"{machine_description()}. A generated manifest (CSV: path, labels) whose rows cycle "
        f"over {REAL_FILES} real 30 s 44.1 kHz stereo WAV files; `validate_audio=False` (headers "
        "only, the setting for corpora this size). Each step runs in a fresh process; memory is "
        "its resident set after imports and its peak during the step, the same for its anonymous "
        "(heap) memory alone — the rest are pages of memory-mapped Arrow files, which the kernel "
        "drops under memory pressure — and the peak of its largest worker process (index scan "
        "or DataLoader worker, torch included).\n\n"
        + markdown_table(header, rows)
        + f"\n\nTar shards: {SHARD_FILES} files of {SHARD_FILE_SECONDS} s (44.1 kHz stereo WAV) "
        f"packed by `write_shards` into {shard['shards']} shards of {SHARD_SIZE} in "
        f"{shard['write']:.1f} s; `ShardLoader` with 2 workers delivered the first "
        f"batch of {BATCH_CLIPS} clips after {shard['first']:.1f} s and then "
        f"{shard['rate']:.0f} clips/s (4 s @ 16 kHz from 44.1 kHz stereo)."
    )
    print(body)
    if not args.no_write:
        write_section("data-scale", body, args.output)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50, help="timed batches per setting")
    parser.add_argument("--scale", action="store_true", help="million-file corpora, shards")
    parser.add_argument("--rows", type=int, nargs="+", default=SCALE_ROWS, help="--scale sizes")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--output", type=Path, default=BENCHMARKS_MD, help="markdown to update")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.scale:
        scale(args)
        return

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
