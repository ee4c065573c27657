"""Streaming mode for corpora too large to index: a sharded ``datasets.IterableDataset`` of
file rows, split across ranks with ``split_dataset_by_node`` and checked lazily.

Listing a folder (or reading a manifest's path column) is cheap even for millions of files;
what the index would add — opening every file — happens here only when a file comes up. Bad
files are skipped and appended to a report as they are met.

Determinism: the crop taken from a file in epoch e is keyed on (seed, e, hash(path)), so it does
not depend on which rank or worker reads the file; the order files arrive in is fixed by the
shuffle seed, the number of shards, ranks and workers.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import torch
from datasets.distributed import split_dataset_by_node
from torch.utils.data import IterableDataset

from wildsep.data.clips import STREAM_CLIP, as_tensor, crop_file, is_usable, keyed_rng, normalise
from wildsep.data.config import ClipConfig, CorpusConfig, default_cache_dir
from wildsep.data.index import (
    absolute_paths,
    check_batch,
    list_folder,
    load_manifest,
    progress_bars,
    resolve_config,
    source_path,
)


def _check_and_report(
    batch: dict[str, list],
    silence_threshold_db: float,
    validate_audio: bool,
    needs_class: bool,
    report_path: str | None,
) -> dict[str, list]:
    out = check_batch(batch, silence_threshold_db, validate_audio, needs_class)
    if report_path:
        rows = zip(batch["path"], out["reason"], out["ok"], strict=True)
        bad = [(path, reason) for path, reason, ok in rows if not ok]
        if bad:
            text = io.StringIO()
            csv.writer(text).writerows(bad)
            # One small append per batch, so lines from concurrent workers do not interleave.
            with open(report_path, "a") as f:
                f.write(text.getvalue())
    return out


def _is_ok(ok: bool) -> bool:
    return ok


def stream_corpus(
    source: str | os.PathLike | CorpusConfig,
    *,
    rank: int = 0,
    world_size: int = 1,
    num_shards: int | None = None,
    shuffle_seed: int | None = None,
    buffer_size: int = 1000,
    report_path: str | os.PathLike | None = None,
    **options: Any,
) -> datasets.IterableDataset:
    """Rows (``path``, ``sample_rate``, ``frames``, ``channels``, ``duration``, ..., ``class``
    when given) of the usable files this rank should read.

    `num_shards` (default 16 per rank) is rounded to a multiple of `world_size` so ranks get
    whole shards; DataLoader workers then split a rank's shards further. With `shuffle_seed` the
    shard order and a `buffer_size` window of rows are shuffled; call ``set_epoch`` on the
    result for a new order each epoch. Skipped files are appended to `report_path` (CSV
    ``path,reason`` without header), by default ``<cache>/stream/skipped-rank<r>.csv``.
    `options` are :class:`CorpusConfig` fields.
    """
    config = resolve_config(source, options)
    path = source_path(config)
    cache_root = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
    stream_dir = cache_root.resolve() / "stream"
    stream_dir.mkdir(parents=True, exist_ok=True)
    with progress_bars(False):
        if path.is_dir():
            columns, _ = list_folder(path, config)
            if not columns["path"]:
                raise ValueError(f"no audio files found under {path}")
            rows = datasets.Dataset.from_dict(columns)
        else:
            key = hashlib.sha256(str(path).encode()).hexdigest()[:16]
            rows = load_manifest(path, config, stream_dir / f"manifest-{key}")
            rows = rows.map(absolute_paths, batched=True, fn_kwargs={"base": str(path.parent)})
    if len(rows) < world_size:
        raise ValueError(f"{path} lists {len(rows)} files, fewer than the {world_size} ranks")
    # A multiple of world_size, so that split_dataset_by_node hands whole shards to ranks. (With
    # any other count it would fall back to every rank reading, and checking, every file.)
    per_rank = (num_shards or 16 * world_size) // world_size
    shards = world_size * max(1, min(per_rank, len(rows) // world_size))
    stream = rows.to_iterable_dataset(num_shards=shards)
    if shuffle_seed is not None:
        stream = stream.shuffle(seed=shuffle_seed, buffer_size=buffer_size)
    stream = split_dataset_by_node(stream, rank=rank, world_size=world_size)
    report = report_path or stream_dir / f"skipped-rank{rank}.csv"
    stream = stream.map(
        _check_and_report,
        batched=True,
        batch_size=8,
        fn_kwargs={
            "silence_threshold_db": config.silence_threshold_db,
            "validate_audio": config.validate_audio,
            "needs_class": "class" in rows.column_names,
            "report_path": os.fspath(report),
        },
    )
    return stream.filter(_is_ok, input_columns="ok").remove_columns(["ok", "reason"])


class StreamingClipDataset(IterableDataset):
    """Clips from a :func:`stream_corpus` stream, one per usable file: float32 (T,) or (2, T).

    Batch it with a plain ``DataLoader(batch_size=...)``; for MixIT use ``batch_size=2B`` and
    :func:`wildsep.data.pair_clips` as ``collate_fn``. Files whose crops are all silent are
    skipped.
    """

    def __init__(
        self, stream: datasets.IterableDataset, config: ClipConfig | None = None, *, seed: int = 0
    ) -> None:
        self.stream = stream
        self.config = config or ClipConfig()
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.stream.set_epoch(epoch)

    def __iter__(self) -> Iterator[torch.Tensor]:
        cfg = self.config
        for row in self.stream:  # inside a DataLoader worker, the stream reads only its shards
            path = row["path"]
            rng = keyed_rng(self.seed, STREAM_CLIP, self.epoch, zlib.crc32(path.encode()))
            for _ in range(cfg.max_attempts):
                clip = crop_file(rng, path, row["sample_rate"], row["frames"], cfg)
                if is_usable(clip, cfg):
                    yield as_tensor(normalise(clip, cfg.normalize, cfg.target_db))
                    break
