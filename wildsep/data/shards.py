"""Sharded tar archives of audio (the WebDataset layout): write them, and stream clips from them
split by rank and DataLoader worker, resuming at the exact next member.

Layout. A shard is a plain ``.tar``; a *sample* is a run of consecutive members sharing a key
(the member path up to the first dot of its file name): ``000042.flac`` plus optional sidecars
``000042.json`` (a JSON object: the source path, manifest columns) and ``000042.cls`` (the class
as text). Any tar in that layout works, e.g. one written by WebDataset's ``TarWriter`` or by
``tar`` over a sorted folder of ``key.ext`` files.

Order and splitting. Epoch e permutes the shards with a generator keyed on (seed, e); rank r
takes every world_size-th shard of that order starting at r, and DataLoader worker w of W takes
every W-th of the rank's shards starting at w, so each member is read by exactly one worker
of one rank per epoch. Members are read in tar order (sequential reads, what large shards on
network storage need). The crop cut from a member is keyed on (seed, epoch, shard, member).

Resuming. :class:`ShardLoader` knows which worker and which member every batch came from
(PyTorch hands out an iterable dataset's batches round-robin over the workers), so its
``state_dict()`` after a training step names the next member of every worker, and a new loader
given that state continues with exactly the batches the interrupted one would have produced.
Exact when ``shuffle_buffer=0``; with a shuffle buffer, the members sitting in a worker's buffer
at the checkpoint are skipped for the rest of that epoch (at most ``shuffle_buffer`` per
worker; none is repeated), because a buffer's contents are not a position in the shards.

Write shards from a folder or manifest: ``python -m wildsep.data.shards SOURCE OUT_DIR``.
"""

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import io
import json
import logging
import os
import re
import sys
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from wildsep.data.audio_io import SOUNDFILE_EXTENSIONS
from wildsep.data.clips import (
    STREAM_CLIP,
    STREAM_ORDER,
    as_tensor,
    collate_clips,
    crop_file,
    is_usable,
    keyed_rng,
    normalise,
)
from wildsep.data.config import ClipConfig, default_cache_dir

logger = logging.getLogger(__name__)

SHARD_NAME = "shard-{:06d}.tar"
_KEY = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # WebDataset's key/extension split
_AUDIO_SUFFIXES = frozenset(e.lstrip(".") for e in SOUNDFILE_EXTENSIONS)


@dataclass
class ShardSample:
    """One sample of a shard: its audio member, and the sidecars that came with it."""

    index: int
    """Position of the sample in its shard (0-based)."""
    key: str
    name: str
    """Name of the audio member, e.g. ``000042.flac``; "" when the sample has no audio."""
    audio: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    """The ``.json`` sidecar."""
    label: str | None = None
    """The ``.cls`` sidecar."""


class ShardReadError(Exception):
    """A shard that cannot be read past some point (truncated or not a tar)."""


def list_shards(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Shard paths from a folder (its ``*.tar``), a glob pattern, one ``.tar``, a text file
    with one path per line, or a list of paths; sorted, except for a given list or text file."""
    if isinstance(source, (list, tuple)):
        paths = [Path(p) for p in source]
    else:
        text = os.fspath(source)
        path = Path(text).expanduser()
        if any(c in text for c in "*?["):
            paths = [Path(p) for p in sorted(glob.glob(os.path.expanduser(text)))]
        elif path.is_dir():
            paths = sorted(path.glob("*.tar"))
        elif path.suffix == ".tar":
            paths = [path]
        elif path.is_file():
            lines = path.read_text().splitlines()
            paths = [(path.parent / line.strip()) for line in lines if line.strip()]
        else:
            raise FileNotFoundError(f"no shards at {text}: give a folder, a .tar, a glob or a list")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} shard(s) missing, e.g. {missing[0]}")
    if not paths:
        raise FileNotFoundError(f"no .tar shards found at {source}")
    return [p.resolve() for p in paths]


def _sample(index: int, key: str, parts: dict[str, bytes]) -> ShardSample:
    name, audio = "", b""
    for ext, data in parts.items():
        if ext.rsplit(".", 1)[-1].lower() in _AUDIO_SUFFIXES:
            name, audio = f"{key}.{ext}", data
            break
    sample = ShardSample(index, key, name, audio)
    if "cls" in parts:
        sample.label = parts["cls"].decode("utf-8", "replace").strip()
    if "json" in parts:
        try:
            meta = json.loads(parts["json"])
        except ValueError as err:
            raise ValueError(f"bad .json sidecar: {err}") from None
        sample.meta = meta if isinstance(meta, dict) else {"value": meta}
    return sample


def iter_shard(
    path: str | os.PathLike, start: int = 0
) -> Iterator[ShardSample | tuple[int, str, Exception]]:
    """The samples of one shard in tar order, from sample `start` on (earlier members are
    skipped without reading their data). A sample whose sidecar is malformed comes as
    ``(index, key, error)``; a shard that stops being readable raises :class:`ShardReadError`
    after yielding what came before."""
    index, key, parts = -1, None, {}
    try:
        with tarfile.open(os.fspath(path), "r:*") as tar:
            while (info := tar.next()) is not None:
                tar.members.clear()  # TarFile would keep every header of the shard otherwise
                match = _KEY.match(info.name) if info.isfile() else None
                if match is None:
                    continue
                if match.group(1) != key:
                    if key is not None and index >= start:
                        yield _safe_sample(index, key, parts)
                    index, key, parts = index + 1, match.group(1), {}
                if index >= start:
                    member = tar.extractfile(info)
                    parts[match.group(2)] = member.read() if member else b""
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise ShardReadError(f"unreadable from sample {max(index, 0)} on: {err}") from err
    if key is not None and index >= start:
        yield _safe_sample(index, key, parts)


def _safe_sample(
    index: int, key: str, parts: dict[str, bytes]
) -> ShardSample | tuple[int, str, Exception]:
    try:
        return _sample(index, key, parts)
    except ValueError as err:
        return index, key, err


@dataclass(frozen=True)
class Position:
    """Where a worker's reader stands: the next sample to read is sample `sample` of the
    `shard`-th shard of the worker's list for `epoch` (`role` is the worker's slot, 0..W−1)."""

    epoch: int
    role: int
    shard: int
    sample: int


class ShardClipDataset(IterableDataset):
    """Clips from tar shards, one per usable audio member: float32 (T,) or (2, T), like
    :class:`wildsep.data.StreamingClipDataset`.

    Use it in a plain ``DataLoader(batch_size=...)``, or in a :class:`ShardLoader` to be able
    to resume mid-epoch. Bad members (undecodable audio, malformed sidecars, silent throughout)
    and unreadable shards are skipped and appended to `report_path` (CSV ``shard:member,reason``
    without header; default ``<cache>/stream/skipped-shards-rank<r>.csv``).
    """

    def __init__(
        self,
        shards: str | os.PathLike | Sequence[str | os.PathLike],
        config: ClipConfig | None = None,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        shuffle_buffer: int = 0,
        report_path: str | os.PathLike | None = None,
    ) -> None:
        self.shards = list_shards(shards)
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, {world_size=}")
        if len(self.shards) < world_size:
            raise ValueError(
                f"{len(self.shards)} shards cannot feed {world_size} ranks: every rank needs at "
                "least one shard (write smaller shards)"
            )
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
        self.config = config or ClipConfig()
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.shuffle, self.shuffle_buffer = shuffle, shuffle_buffer
        default_report = default_cache_dir() / "stream" / f"skipped-shards-rank{rank}.csv"
        self.report_path = Path(report_path or default_report)
        self.epoch = 0
        self.resume: dict[str, Any] | None = None
        """Set by :class:`ShardLoader`: where each worker starts (see `state_dict`)."""

    @property
    def fingerprint(self) -> str:
        """Identifies the shard list, so a saved position is not applied to other shards."""
        names = "\n".join(p.name for p in self.shards)
        return hashlib.sha256(names.encode()).hexdigest()[:16]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shards_for(self, epoch: int, role: int, num_workers: int) -> list[int]:
        """Indices (into `self.shards`) that worker slot `role` of `num_workers` reads in
        `epoch` on this rank, in reading order."""
        n = len(self.shards)
        order = keyed_rng(self.seed, STREAM_ORDER, epoch).permutation(n) if self.shuffle else None
        order = np.arange(n) if order is None else order
        return [int(i) for i in order[self.rank :: self.world_size][role::num_workers]]

    def __iter__(self) -> Iterator[torch.Tensor]:
        for clip, _ in self.iter_with_positions():
            yield clip

    def iter_with_positions(self) -> Iterator[tuple[torch.Tensor, Position]]:
        """(clip, reader position after it) for this worker: see :class:`ShardLoader`."""
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        resume = self.resume or {"next_role": 0, "positions": {}}
        # Worker 0 is asked first: after a resume it takes the slot whose batch comes next.
        role = (worker + resume["next_role"]) % num_workers
        start_shard, start_sample = resume["positions"].get(str(role), (0, 0))
        epoch = self.epoch
        shards = self.shards_for(epoch, role, num_workers)
        items = self._clips(epoch, role, shards, start_shard, start_sample)
        if self.shuffle_buffer:
            items = self._buffered(items, keyed_rng(self.seed, STREAM_ORDER, epoch, 1 + role))
        yield from items

    def _buffered(
        self, items: Iterator[tuple[torch.Tensor, Position]], rng: np.random.Generator
    ) -> Iterator[tuple[torch.Tensor, Position]]:
        """A shuffle buffer; each clip leaves with the reader's position at that moment."""
        buffer: list[torch.Tensor] = []
        position = None
        for clip, position in items:
            buffer.append(clip)
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(int(rng.integers(len(buffer)))), position
        while buffer:
            yield buffer.pop(int(rng.integers(len(buffer)))), position

    def _clips(
        self, epoch: int, role: int, shards: list[int], start_shard: int, start_sample: int
    ) -> Iterator[tuple[torch.Tensor, Position]]:
        for slot in range(start_shard, len(shards)):
            shard_id = shards[slot]
            path = self.shards[shard_id]
            first = start_sample if slot == start_shard else 0
            try:
                for sample in iter_shard(path, first):
                    if isinstance(sample, tuple):
                        self._report(path, sample[1], str(sample[2]))
                        continue
                    clip = self._clip(path, shard_id, sample, epoch)
                    if clip is not None:
                        yield clip, Position(epoch, role, slot, sample.index + 1)
            except ShardReadError as err:
                self._report(path, "", str(err))

    def _clip(
        self, path: Path, shard_id: int, sample: ShardSample, epoch: int
    ) -> torch.Tensor | None:
        """A usable clip of the sample's audio, or None (reported unless merely silent)."""
        cfg = self.config
        if not sample.name:
            self._report(path, sample.key, "no audio member")
            return None
        rng = keyed_rng(self.seed, STREAM_CLIP, epoch, shard_id, sample.index)
        audio = io.BytesIO(sample.audio)
        try:
            info = sf.info(audio)
            if info.frames <= 0:
                raise ValueError("no audio frames")
            for _ in range(cfg.max_attempts):
                clip = crop_file(rng, audio, info.samplerate, info.frames, cfg)
                if is_usable(clip, cfg):
                    return as_tensor(normalise(clip, cfg.normalize, cfg.target_db))
        except (sf.LibsndfileError, RuntimeError, ValueError) as err:
            self._report(path, sample.name, f"unreadable: {err}")
        return None

    def _report(self, shard: Path, member: str, reason: str) -> None:
        logger.warning("skipping %s:%s: %s", shard.name, member, reason)
        self.report_path.parent.mkdir(parents=True, exist_ok=True)
        text = io.StringIO()
        csv.writer(text).writerow([f"{shard}:{member}", reason])
        with open(self.report_path, "a") as f:  # one small append: workers do not interleave
            f.write(text.getvalue())


class _Positioned(IterableDataset):
    def __init__(self, dataset: ShardClipDataset) -> None:
        self.dataset = dataset

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Position]]:
        return self.dataset.iter_with_positions()


class _CollateWithPosition:
    """Collate the clips of a batch; keep the reader position after its last clip."""

    def __init__(self, collate: Callable[[list[torch.Tensor]], Any]) -> None:
        self.collate = collate

    def __call__(self, items: list[tuple[torch.Tensor, Position]]) -> tuple[Any, Position]:
        return self.collate([clip for clip, _ in items]), items[-1][1]


class ShardLoader:
    """Batches of a :class:`ShardClipDataset`, one epoch per iteration, resumable mid-epoch.

    ``for batch in loader`` runs the dataset's current epoch and then moves it to the next.
    After a training step, ``loader.state_dict()`` holds the epoch and, for every worker slot,
    the next member to read; a new loader (same shards, seed, ranks and `num_workers`) given it
    through ``load_state_dict`` continues with the exact batches the old one would have given
    next, in the same order. Each batch is what `collate_fn` makes of `batch_size` clips from
    one worker (``collate_clips``: (B, T); ``pair_clips``: MixIT batches).
    """

    def __init__(
        self,
        dataset: ShardClipDataset,
        batch_size: int,
        *,
        collate_fn: Callable[[list[torch.Tensor]], Any] = collate_clips,
        num_workers: int = 0,
        drop_last: bool = False,
        **loader_options: Any,
    ) -> None:
        if loader_options.get("persistent_workers"):
            raise ValueError(
                "ShardLoader starts its workers each epoch (they take the epoch and the resume "
                "position with them); persistent_workers is not supported"
            )
        self.dataset, self.batch_size, self.num_workers = dataset, batch_size, num_workers
        self.collate_fn, self.drop_last, self.loader_options = collate_fn, drop_last, loader_options
        self._positions: dict[str, list[int]] = {}
        self._next_role = 0

    def __iter__(self) -> Iterator[Any]:
        roles = max(1, self.num_workers)
        if self._positions or self._next_role:
            self.dataset.resume = {"next_role": self._next_role, "positions": self._positions}
        loader = DataLoader(
            _Positioned(self.dataset),
            batch_size=self.batch_size,
            collate_fn=_CollateWithPosition(self.collate_fn),
            num_workers=self.num_workers,
            drop_last=self.drop_last,
            **self.loader_options,
        )
        try:
            for batch, position in loader:
                self._positions[str(position.role)] = [position.shard, position.sample]
                self._next_role = (position.role + 1) % roles
                yield batch
        finally:
            self.dataset.resume = None
        self.dataset.set_epoch(self.dataset.epoch + 1)
        self._positions, self._next_role = {}, 0

    def state_dict(self) -> dict[str, Any]:
        """Where the next batch starts; save it with the model after a training step."""
        return {
            "epoch": self.dataset.epoch,
            "next_role": self._next_role,
            "positions": {k: list(v) for k, v in self._positions.items()},
            "num_workers": self.num_workers,
            "world_size": self.dataset.world_size,
            "rank": self.dataset.rank,
            "shards": self.dataset.fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = {
            "num_workers": self.num_workers,
            "world_size": self.dataset.world_size,
            "rank": self.dataset.rank,
            "shards": self.dataset.fingerprint,
        }
        diff = {k: (state.get(k), v) for k, v in expected.items() if state.get(k) != v}
        if diff:
            raise ValueError(
                "cannot resume: the saved position was taken with other settings "
                + ", ".join(f"{k}: saved {a}, now {b}" for k, (a, b) in diff.items())
            )
        self.dataset.set_epoch(int(state["epoch"]))
        self._next_role = int(state["next_role"])
        self._positions = {str(k): [int(a), int(b)] for k, (a, b) in state["positions"].items()}


# ------------------------------------------------------------------------------------ writing


def write_shards(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    samples_per_shard: int = 1000,
    seed: int | None = 0,
    progress: bool = True,
    **corpus_options: Any,
) -> list[Path]:
    """Pack a corpus folder or manifest into ``out_dir/shard-000000.tar``, ... .

    The corpus is indexed first (:func:`wildsep.data.build_corpus_index`: unusable files are
    left out and reported), shuffled with `seed` (None keeps the index order) so every shard is
    a random sample of the corpus, and written `samples_per_shard` files to a shard: the audio
    file's bytes as ``<key>.<ext>``, a ``.cls`` with its class when the corpus has classes and a
    ``.json`` with its source path and other manifest columns. ``shards.json`` lists the shards
    and their sample counts. Shards are written under a temporary name and renamed when
    complete; a folder that already holds shards is refused (nothing is overwritten).
    """
    from wildsep.data.index import SCAN_COLUMNS, arrow_table, build_corpus_index

    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and (any(out.glob("shard-*.tar")) or (out / "shards.json").exists()):
        raise FileExistsError(f"{out} already holds shards; give an empty or new folder")
    index = build_corpus_index(source, progress=progress, **corpus_options)
    table = arrow_table(index)
    extra = [c for c in table.column_names if c not in {"path", "class", *SCAN_COLUMNS}]
    order = np.arange(table.num_rows)
    if seed is not None:
        order = keyed_rng(seed, STREAM_ORDER).permutation(table.num_rows)
    out.mkdir(parents=True, exist_ok=True)
    written, listing = [], []
    started = time.monotonic()
    for number, first in enumerate(range(0, len(order), samples_per_shard)):
        rows = table.take(order[first : first + samples_per_shard]).to_pylist()
        final = out / SHARD_NAME.format(number)
        partial = final.with_name(f".{final.name}.partial")
        with tarfile.open(partial, "w", dereference=True) as tar:
            for offset, row in enumerate(rows):
                key = f"{first + offset:09d}"
                suffix = Path(row["path"]).suffix.lower().lstrip(".") or "audio"
                tar.add(row["path"], arcname=f"{key}.{suffix}")
                if row.get("class"):
                    _add_bytes(tar, f"{key}.cls", str(row["class"]).encode())
                meta = {"path": row["path"], **{c: row[c] for c in extra}}
                _add_bytes(tar, f"{key}.json", json.dumps(meta, default=str).encode())
        partial.rename(final)
        written.append(final)
        listing.append({"name": final.name, "samples": len(rows)})
        if progress:
            print(
                f"\rwrote {len(written)} shard(s), {first + len(rows)} / {len(order)} files "
                f"({time.monotonic() - started:.0f} s)",
                end="",
                file=sys.stderr,
                flush=True,
            )
    if progress:
        print(file=sys.stderr)
    summary = {"source": str(index.source), "samples": len(order), "shards": listing}
    (out / "shards.json").write_text(json.dumps(summary, indent=2) + "\n")
    return written


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(time.time())
    tar.addfile(info, io.BytesIO(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wildsep.data.shards",
        description="Pack an audio folder or manifest into WebDataset-style tar shards.",
    )
    parser.add_argument("source", help="corpus folder or manifest (.csv/.tsv/.jsonl/.parquet)")
    parser.add_argument("out_dir", help="new or empty folder for shard-000000.tar, ...")
    parser.add_argument("--samples-per-shard", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    parser.add_argument("--no-shuffle", action="store_true", help="keep the index order")
    parser.add_argument("--class-from-folder", action="store_true")
    parser.add_argument("--class-column", default=None)
    parser.add_argument("--path-column", default="path")
    parser.add_argument("--cache-dir", default=None, help="where the corpus index is cached")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        shards = write_shards(
            args.source,
            args.out_dir,
            samples_per_shard=args.samples_per_shard,
            seed=None if args.no_shuffle else args.seed,
            progress=not args.quiet,
            class_from_folder=args.class_from_folder,
            class_column=args.class_column,
            path_column=args.path_column,
            cache_dir=args.cache_dir,
        )
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(shards)} shard(s) to {Path(args.out_dir).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
