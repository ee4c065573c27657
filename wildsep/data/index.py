"""Corpus index: one row per usable audio file, as a memory-mapped ``datasets.Dataset``.

:func:`build_corpus_index` takes a folder (scanned recursively) or a manifest (CSV/TSV, JSON
lines or Parquet with a path column), checks every file in parallel with a progress bar, drops
the bad ones into a report, and caches the result outside the corpus: a second run over an
unchanged corpus loads the cached Arrow table instead of rescanning audio.

Index columns: ``path`` (absolute), ``sample_rate``, ``frames``, ``channels``, ``duration`` (s),
``format``, ``peak_db``, ``rms_db`` (dBFS, -inf when only headers were read), ``class`` when
classes are given, and any other manifest columns unchanged (e.g. weak ``labels``).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import csv
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute  # registers pa.compute
import pyarrow.ipc  # registers pa.ipc
from tqdm.auto import tqdm

from wildsep.data.audio_io import AUDIO_EXTENSIONS, check_audio_file
from wildsep.data.config import CorpusConfig, default_cache_dir

logger = logging.getLogger(__name__)

INDEX_VERSION = 2  # 2: the index is one Arrow file, written batch by batch
MANIFEST_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json"}
MANIFEST_SUFFIXES |= {".parquet": "parquet", ".pq": "parquet"}
SCAN_COLUMNS = ("sample_rate", "frames", "channels", "duration", "format", "peak_db", "rms_db")
_SMALL_CORPUS = 256  # below this, starting worker processes costs more than it saves
_SCAN_CHUNK = 256  # files per task sent to a scanning process


@dataclass(frozen=True)
class CorpusIndex:
    """A built index: the table of usable files plus where its cache and skip report live."""

    dataset: datasets.Dataset
    """One row per usable file (columns in the module docstring), memory-mapped."""
    source: Path
    cache_path: Path
    report_path: Path
    """CSV (path, reason) of every skipped file."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Number of skipped files per reason category (e.g. ``{"silent": 3}``)."""

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def classes(self) -> list[str]:
        """Sorted distinct classes, or [] for an unlabeled corpus."""
        if "class" not in self.dataset.column_names:
            return []
        return sorted(pa.compute.unique(arrow_table(self, ["class"]).column("class")).to_pylist())

    @property
    def hours(self) -> float:
        return (
            float(pa.compute.sum(arrow_table(self, ["duration"]).column("duration")).as_py()) / 3600
        )


def arrow_table(
    index: CorpusIndex | datasets.Dataset | pa.Table, columns: list[str] | None = None
) -> pa.Table:
    """The rows of an index (or of a filtered/selected view of one) as an Arrow table.

    ``Dataset.data`` is the underlying table *before* any ``filter``/``select``; this applies
    the view. Unfiltered tables come back as zero-copy slices of the memory map.
    """
    if isinstance(index, pa.Table):
        return index.select(columns) if columns is not None else index
    dataset = index.dataset if isinstance(index, CorpusIndex) else index
    if columns is not None:
        dataset = dataset.select_columns(columns)
    return dataset.with_format("arrow")[:]


def resolve_config(
    source: str | os.PathLike | CorpusConfig, options: dict[str, Any]
) -> CorpusConfig:
    """A :class:`CorpusConfig` from a path plus option overrides, or a config as given."""
    valid = set(CorpusConfig.__dataclass_fields__) - {"source"}
    unknown = set(options) - valid
    if unknown:
        raise ValueError(f"unknown corpus option(s) {sorted(unknown)}; valid: {sorted(valid)}")
    if isinstance(source, CorpusConfig):
        return replace(source, **options) if options else source
    return CorpusConfig(source=os.fspath(source), **options)


def source_path(config: CorpusConfig) -> Path:
    """The resolved corpus folder or manifest; clear errors if missing or not a manifest."""
    if not config.source:
        raise ValueError("no corpus source given: set `source` to a folder or a manifest file")
    path = Path(config.source).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"corpus path {path} does not exist")
    if path.is_file() and path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise ValueError(
            f"{path} is a file but not a manifest; give a folder, or a manifest ending in "
            f"{sorted(MANIFEST_SUFFIXES)}"
        )
    return path


def _walk_audio_files(
    root: Path, extensions: frozenset[str]
) -> Iterator[tuple[str, os.stat_result]]:
    """(path relative to root, stat) of candidate files, sorted, skipping hidden entries."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError as err:
            logger.warning("cannot list %s: %s", folder, err)
            continue
        files = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif os.path.splitext(entry.name)[1].lower() in extensions:
                files.append(entry)
        for entry in reversed(files):
            try:
                stat = entry.stat()
            except OSError:
                continue  # a dangling symlink; not worth a report line
            yield os.path.relpath(entry.path, root), stat


def list_folder(root: Path, config: CorpusConfig) -> tuple[dict[str, list], str]:
    """Candidate files under `root` (columns ``path``, maybe ``class``) and a digest of
    their names, sizes and modification times."""
    extensions = frozenset(config.extensions) if config.extensions else AUDIO_EXTENSIONS
    digest = hashlib.sha256()
    paths, classes = [], []
    for rel, stat in _walk_audio_files(root, extensions):
        digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        paths.append(str(root / rel))
        parts = Path(rel).parts
        classes.append(parts[0] if len(parts) > 1 else "")
    columns: dict[str, list] = {"path": paths}
    if config.class_from_folder:
        columns["class"] = classes
    return columns, digest.hexdigest()


def load_manifest(path: Path, config: CorpusConfig, work_dir: Path) -> datasets.Dataset:
    """A manifest as a memory-mapped Arrow table (under `work_dir`) with the path column
    renamed to ``path`` and the class column, if any, to ``class``."""
    kind = MANIFEST_SUFFIXES[path.suffix.lower()]
    kwargs: dict[str, Any] = {"cache_dir": str(work_dir)}
    if path.suffix.lower() == ".tsv":
        kwargs["sep"] = "\t"
    loader = {
        "csv": datasets.Dataset.from_csv,
        "json": datasets.Dataset.from_json,
        "parquet": datasets.Dataset.from_parquet,
    }[kind]
    try:
        table = loader(str(path), **kwargs)
    except Exception as err:  # pyarrow/pandas raise many types for malformed files
        raise ValueError(f"cannot read manifest {path}: {err}") from None
    if config.path_column not in table.column_names:
        raise ValueError(
            f"manifest {path} has no path column {config.path_column!r}; its columns are "
            f"{table.column_names} (set path_column to the right one)"
        )
    if config.class_column and config.class_column not in table.column_names:
        raise ValueError(
            f"manifest {path} has no class column {config.class_column!r}; its columns are "
            f"{table.column_names}"
        )
    clashes = [c for c in (*SCAN_COLUMNS, "ok", "reason") if c in table.column_names]
    if clashes:  # recomputed from the audio itself, which is the authority
        table = table.remove_columns(clashes)
    renames = {config.path_column: "path"}
    if config.class_column and config.class_column != "class":
        if "class" in table.column_names:  # keep the user's column, out of the way
            table = table.rename_column("class", "manifest_class")
        renames[config.class_column] = "class"
    renames = {k: v for k, v in renames.items() if k != v}
    table = table.rename_columns(renames) if renames else table
    if "class" in table.column_names:  # a column named `class` is used even if not configured
        table = table.cast_column("class", datasets.Value("string"))
    return table


def _manifest_signature(path: Path) -> str:
    stat = path.stat()
    return f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}"


def absolute_paths(batch: dict[str, list], base: str) -> dict[str, list]:
    """Resolve manifest paths relative to the manifest folder `base`."""
    return {"path": [os.path.normpath(os.path.join(base, str(p))) for p in batch["path"]]}


def check_batch(
    batch: dict[str, list], silence_threshold_db: float, validate_audio: bool, needs_class: bool
) -> dict[str, list]:
    """Check each path of a batch (see :func:`check_audio_file`); the rows gain ``ok``,
    ``reason`` and the :data:`SCAN_COLUMNS`."""
    out: dict[str, list] = {k: [] for k in ("ok", "reason", *SCAN_COLUMNS)}
    for i, path in enumerate(batch["path"]):
        check = check_audio_file(
            path, silence_threshold_db=silence_threshold_db, validate_audio=validate_audio
        )
        reason = check.reason
        if reason is None and needs_class and not batch["class"][i]:
            reason = "no class (not inside a class folder, or empty class column)"
        info = check.info
        out["ok"].append(reason is None)
        out["reason"].append(reason or "")
        out["sample_rate"].append(info.sample_rate if info else 0)
        out["frames"].append(info.frames if info else 0)
        out["channels"].append(info.channels if info else 0)
        out["duration"].append(info.duration if info else 0.0)
        out["format"].append(info.format if info else "")
        out["peak_db"].append(check.peak_db)
        out["rms_db"].append(check.rms_db)
    return out


_SCAN_FEATURES = {
    "ok": datasets.Value("bool"),
    "reason": datasets.Value("string"),
    "sample_rate": datasets.Value("int32"),
    "frames": datasets.Value("int64"),
    "channels": datasets.Value("int16"),
    "duration": datasets.Value("float64"),
    "format": datasets.Value("string"),
    "peak_db": datasets.Value("float32"),
    "rms_db": datasets.Value("float32"),
}


def _check_chunk(
    paths: list[str], classes: list[str] | None, silence_threshold_db: float, validate_audio: bool
) -> dict[str, list]:
    batch = {"path": paths} if classes is None else {"path": paths, "class": classes}
    return check_batch(batch, silence_threshold_db, validate_audio, classes is not None)


def scan_to_index(
    candidates: datasets.Dataset,
    config: CorpusConfig,
    index_path: Path,
    report_path: Path,
    *,
    desc: str = "Scanning",
    progress: bool = True,
) -> tuple[int, dict[str, int]]:
    """Check every ``path`` of `candidates` in parallel (:func:`check_batch`) and write the
    usable rows, with the :data:`SCAN_COLUMNS` added, to the Arrow file `index_path`, and the
    others to the CSV `report_path` (path, reason).

    Streams: chunks of rows go to the worker processes a few at a time and their results are
    written as they come back, in order, so memory stays bounded however many files there are
    (``datasets.map`` here held ~0.2 kB of heap per row). Returns the number of usable rows and
    the skipped count per reason category.
    """
    num_proc = config.num_proc if config.num_proc is not None else (os.cpu_count() or 1)
    if len(candidates) < _SMALL_CORPUS:
        num_proc = 1
    features = candidates.features.copy()
    features.update({k: v for k, v in _SCAN_FEATURES.items() if k not in ("ok", "reason")})
    schema = datasets.Features(features).arrow_schema  # `Dataset.from_file` restores features
    scan_types = {k: datasets.Features(_SCAN_FEATURES)[k].pa_type for k in _SCAN_FEATURES}
    table = arrow_table(candidates)
    has_class = "class" in table.column_names
    options = (config.silence_threshold_db, config.validate_audio)

    def jobs() -> Iterator[tuple[pa.RecordBatch, tuple]]:
        for batch in table.to_batches(max_chunksize=_SCAN_CHUNK):
            paths = batch.column("path").to_pylist()
            classes = batch.column("class").to_pylist() if has_class else None
            yield batch, (paths, classes, *options)

    kept, skipped = 0, Counter()
    bar = tqdm(total=len(candidates), desc=desc, unit=" files", disable=not progress)
    with (
        pa.OSFile(str(index_path), "wb") as sink,
        pa.ipc.new_stream(sink, schema) as writer,
        open(report_path, "w", newline="") as report,
        _ordered_pool(num_proc) as run,
    ):
        bad_writer = csv.writer(report)
        bad_writer.writerow(["path", "reason"])
        for batch, out in run(_check_chunk, jobs()):
            ok = pa.array(out.pop("ok"), pa.bool_())
            reasons = out.pop("reason")
            columns = {n: batch.column(n) for n in batch.schema.names}
            columns.update({k: pa.array(v, scan_types[k]) for k, v in out.items()})
            good = pa.RecordBatch.from_arrays([columns[n] for n in schema.names], schema=schema)
            writer.write_batch(good.filter(ok))
            kept += pa.compute.sum(ok).as_py() or 0
            bad = [
                (p, r)
                for p, r, g in zip(
                    columns["path"].to_pylist(), reasons, ok.to_pylist(), strict=True
                )
                if not g
            ]
            bad_writer.writerows(bad)
            skipped.update(_reason_category(reason) for _, reason in bad)
            bar.update(batch.num_rows)
    bar.close()
    return kept, dict(skipped)


@contextlib.contextmanager
def _ordered_pool(num_proc: int) -> Iterator[Callable]:
    """`run(fn, items)`: for (tag, args) items, yields (tag, fn(*args)) in order, with at most
    2 × num_proc calls in flight (in `num_proc` processes; in this one when num_proc is 1)."""
    if num_proc <= 1:
        yield lambda fn, items: ((tag, fn(*args)) for tag, args in items)
        return
    with concurrent.futures.ProcessPoolExecutor(num_proc) as pool:

        def run(fn: Callable, items: Iterator[tuple[Any, tuple]]) -> Iterator[tuple[Any, Any]]:
            pending: collections.deque = collections.deque()
            for tag, args in items:
                pending.append((tag, pool.submit(fn, *args)))
                if len(pending) >= 2 * num_proc:
                    tag0, future = pending.popleft()
                    yield tag0, future.result()
            while pending:
                tag0, future = pending.popleft()
                yield tag0, future.result()

        yield run


@contextlib.contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Show `datasets`' progress bars only where they help (the scan), not for bookkeeping."""
    was_enabled = datasets.is_progress_bar_enabled()
    (datasets.enable_progress_bars if enabled else datasets.disable_progress_bars)()
    try:
        yield
    finally:
        (datasets.enable_progress_bars if was_enabled else datasets.disable_progress_bars)()


def _reason_category(reason: str) -> str:
    return reason.split(" (")[0].split(":")[0]


def build_corpus_index(
    source: str | os.PathLike | CorpusConfig,
    *,
    refresh: bool = False,
    progress: bool = True,
    **options: Any,
) -> CorpusIndex:
    """Index a corpus folder or manifest (cached; see the module docstring).

    `source` is a path or a :class:`CorpusConfig`; `options` are :class:`CorpusConfig` fields
    (``class_from_folder=True``, ``cache_dir=...``, ``num_proc=...``). `refresh` rescans even if
    a cached index matches. Raises ``FileNotFoundError`` for a missing path and ``ValueError``
    for a manifest without the path column or a corpus without a single usable file.
    """
    config = resolve_config(source, options)
    path = source_path(config)
    cache_root = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
    cache_root = cache_root.resolve() / "index"
    if path.is_dir() and cache_root.is_relative_to(path):
        raise ValueError(f"the index cache {cache_root} must not be inside the corpus {path}")
    cache_root.mkdir(parents=True, exist_ok=True)

    settings = asdict(config)
    for key in ("source", "cache_dir", "num_proc"):
        settings.pop(key)
    work_dir = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_root))
    try:
        if path.is_dir():
            columns, listing = list_folder(path, config)
            signature = f"folder\0{path}\0{listing}"
        else:
            signature = f"manifest\0{_manifest_signature(path)}"
            columns = None
        key = hashlib.sha256(
            json.dumps([INDEX_VERSION, signature, settings], sort_keys=True).encode()
        ).hexdigest()[:20]
        cache_path = cache_root / key
        cached = _load_cached(cache_path, path)
        if cached is not None and not refresh:
            return cached

        with progress_bars(False):
            candidates = _candidates(path, config, columns, work_dir)
        staging = work_dir / "result"
        staging.mkdir()
        kept, skipped = scan_to_index(
            candidates,
            config,
            staging / "index.arrow",
            staging / "skipped.csv",
            desc=f"Scanning {path.name}",
            progress=progress,
        )
        if kept == 0:
            report = work_dir.parent / f"{key}-skipped.csv"
            shutil.copyfile(staging / "skipped.csv", report)
            raise ValueError(
                f"no usable audio in {path}: all {len(candidates)} candidate files were skipped "
                f"({skipped}); see {report}"
            )
        summary = {"source": str(path), "files": kept, "skipped": skipped}
        (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if cache_path.exists():
            shutil.rmtree(cache_path)
        try:
            staging.rename(cache_path)
        except OSError:  # another process finished the same index first; use theirs
            pass
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    index = _load_cached(cache_path, path)
    assert index is not None
    _log_summary(index)
    return index


def _candidates(
    path: Path, config: CorpusConfig, columns: dict[str, list] | None, work_dir: Path
) -> datasets.Dataset:
    """The rows to scan: listed folder files, or the manifest with absolute paths."""
    if columns is not None:
        if not columns["path"]:
            raise ValueError(
                f"no audio files found under {path} (looked for suffixes "
                f"{sorted(config.extensions or AUDIO_EXTENSIONS)})"
            )
        return datasets.Dataset.from_dict(columns)
    candidates = load_manifest(path, config, work_dir / "manifest")
    return candidates.map(
        absolute_paths,
        batched=True,
        fn_kwargs={"base": str(path.parent)},
        load_from_cache_file=False,
    )


def _load_cached(cache_path: Path, source: Path) -> CorpusIndex | None:
    summary_path = cache_path / "summary.json"
    if not summary_path.is_file():
        return None
    try:
        summary = json.loads(summary_path.read_text())
        dataset = datasets.Dataset.from_file(str(cache_path / "index.arrow"))
    except (OSError, ValueError, FileNotFoundError):
        return None
    return CorpusIndex(dataset, source, cache_path, cache_path / "skipped.csv", summary["skipped"])


def _log_summary(index: CorpusIndex) -> None:
    skipped = sum(index.skipped.values())
    logger.info(
        "indexed %d files (%.2f h) from %s%s",
        len(index),
        index.hours,
        index.source,
        f"; skipped {skipped} {index.skipped}, listed in {index.report_path}" if skipped else "",
    )
