"""Mining unlabeled audio for segments where a class is absent, and remixing labeled sources
into them (the Demucs semi-supervised scheme, reference §5).

1. :func:`mine_corpus` runs a :class:`wildsep.models.PresenceClassifier` over every file of an
   unlabeled corpus (indexed or streamed) and appends one manifest row per (segment, class)
   where the class is absent with confidence ≥ `MiningConfig.confidence`, i.e. where
   P(present) ≤ 1 − confidence in every presence window of the segment. Resumable: rows are
   appended file by file, each file is then recorded in ``<manifest>.done``; a rerun drops the
   rows of a file that was cut off and goes on with the files not yet done.
2. :class:`RemixDataset` turns the manifest into weakly supervised examples: a crop x_u of a
   mined segment plus a labeled clip s_i of the absent class at gain g,
   x' = x_u + g·s_i, with references (g·s_i, x_u) and prompts (class i, background prompt).
3. :func:`write_truth_corpus` and :func:`score_mining` measure a miner on synthetic tracks with
   known silent spans (the precision of detection decides whether the scheme helps).

Manifest rows (JSON lines)::

    {"path": "/abs/clip.wav", "start": 88200, "frames": 88200, "sample_rate": 44100,
     "start_seconds": 2.0, "seconds": 2.0, "absent": "speech", "confidence": 0.97}

`start`/`frames` are in frames of the file at its own rate; `confidence` = 1 − max P(present)
over the segment's windows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from wildsep.data.audio_io import load_audio, load_span
from wildsep.data.clips import ClipSampler, keyed_rng, parse_key
from wildsep.data.config import ClipConfig, CorpusConfig
from wildsep.data.demo import synthesise
from wildsep.data.index import CorpusIndex, arrow_table, build_corpus_index, source_path
from wildsep.data.loaders import keyed_loader
from wildsep.data.sampler import ResumableBatchSampler
from wildsep.data.streaming import stream_corpus
from wildsep.models.presence import PresenceClassifier

log = logging.getLogger(__name__)

STREAM_REMIX = 17  # keyed-RNG stream of remix examples (distinct from wildsep.data.clips')


@dataclass
class MiningConfig:
    """What the miner looks for (see :func:`mine_corpus`)."""

    classes: list[str] | None = None
    """Classes to mine; None = every class of the presence classifier."""
    segment_seconds: float = 2.0
    """Segment length; must lie on the classifier's window grid (window + k·window hop)."""
    segment_hop_seconds: float | None = None
    """Step between candidate segments (a multiple of the window hop); None = segment_seconds."""
    confidence: float = 0.9
    """Emit a segment when P(class present) ≤ 1 − confidence in every window of it."""
    silence_threshold_db: float = -60.0
    """Segments quieter than this RMS (dBFS) are skipped: nothing to remix into."""
    chunk_seconds: float = 60.0
    """Files are classified in chunks of about this length, to bound memory."""

    def __post_init__(self) -> None:
        if not 0.0 < self.confidence <= 1.0:
            raise ValueError(f"mining.confidence must be in (0, 1], got {self.confidence}")
        if self.segment_seconds <= 0 or (self.segment_hop_seconds or 1.0) <= 0:
            raise ValueError("mining.segment_seconds and segment_hop_seconds must be positive")


@dataclass(frozen=True)
class SegmentGrid:
    """Candidate segments on a classifier's window grid, in windows and model-rate samples."""

    windows: int  # presence windows per segment
    stride: int  # windows between segment starts
    window_hop: int  # samples between windows
    length: int  # samples per segment

    @staticmethod
    def create(config: MiningConfig, window: int, window_hop: int, sample_rate: int) -> SegmentGrid:
        length = round(config.segment_seconds * sample_rate)
        hop = round((config.segment_hop_seconds or config.segment_seconds) * sample_rate)
        if length < window or (length - window) % window_hop or hop % window_hop:
            raise ValueError(
                f"mining.segment_seconds={config.segment_seconds} and segment_hop_seconds="
                f"{config.segment_hop_seconds} must lie on the classifier's grid: segment = "
                f"{window / sample_rate} s + k·{window_hop / sample_rate} s, hop a multiple "
                f"of {window_hop / sample_rate} s"
            )
        return SegmentGrid(
            (length - window) // window_hop + 1, hop // window_hop, window_hop, length
        )

    def count(self, total_windows: int) -> int:
        """Number of whole segments in a recording of `total_windows` windows."""
        if total_windows < self.windows:
            return 0
        return (total_windows - self.windows) // self.stride + 1


def absent_segments(
    probabilities: np.ndarray, grid: SegmentGrid, confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments where a class is absent with at least `confidence`.

    Args:
        probabilities: (W, C) P(class present) per window.
    Returns:
        segment indices (K,), class indices (K,), confidences (K,) = 1 − max P over the
        segment's windows, sorted by segment then class.
    """
    count = grid.count(len(probabilities))
    if count == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    starts = np.arange(count) * grid.stride
    spans = starts[:, None] + np.arange(grid.windows)  # (K, n)
    peak = probabilities[spans].max(axis=1)  # (K, C)
    conf = 1.0 - peak
    # A small tolerance so that confidence = 1 − P computed in float32 is not lost to rounding.
    segment, cls = np.nonzero(conf >= confidence - 1e-7)
    return segment, cls, conf[segment, cls]


def segment_levels_db(audio: np.ndarray, grid: SegmentGrid, count: int) -> np.ndarray:
    """RMS level (dBFS) of each of `count` grid segments of a mono signal (T,)."""
    step = grid.stride * grid.window_hop
    out = np.empty(count)
    for k in range(count):
        piece = audio[k * step : k * step + grid.length].astype(np.float64)
        power = float(np.mean(piece**2)) if piece.size else 0.0
        out[k] = 10 * math.log10(power) if power > 0 else -math.inf
    return out


def mine_file(
    model: PresenceClassifier,
    path: str,
    config: MiningConfig,
    grid: SegmentGrid,
    classes: Sequence[int],
) -> tuple[list[dict[str, Any]], float]:
    """Manifest rows of one file (see the module docstring) and its duration in seconds.

    `classes` are indices into the model's classes, the ones to mine."""
    sr = model.config.sample_rate
    audio = load_audio(path, sr, channels="mono")[0]
    file_rate = sf.info(path).samplerate
    device = next(model.parameters()).device
    probs = model.probabilities(torch.from_numpy(audio).to(device), config.chunk_seconds)
    probs = probs[:, list(classes)].cpu().numpy()
    segment, cls, conf = absent_segments(probs, grid, config.confidence)
    levels = segment_levels_db(audio, grid, grid.count(len(probs)))
    rows = []
    for k, c, confidence in zip(segment.tolist(), cls.tolist(), conf.tolist(), strict=True):
        if levels[k] < config.silence_threshold_db:
            continue
        start = k * grid.stride * grid.window_hop  # model-rate samples
        rows.append(
            {
                "path": path,
                "start": round(start * file_rate / sr),
                "frames": round(grid.length * file_rate / sr),
                "sample_rate": file_rate,
                "start_seconds": round(start / sr, 6),
                "seconds": round(grid.length / sr, 6),
                "absent": model.classes[classes[c]],
                "confidence": round(confidence, 6),
            }
        )
    return rows, len(audio) / sr


def _done_path(manifest: Path) -> Path:
    return manifest.with_name(manifest.name + ".done")


def _settings_path(manifest: Path) -> Path:
    return manifest.with_name(manifest.name + ".settings.json")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; a torn last line (a kill mid-write) is ignored."""
    rows = []
    if not path.is_file():
        return rows
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _append(handle, text: str) -> None:
    handle.write(text)
    handle.flush()
    os.fsync(handle.fileno())


def _corpus_paths(corpus: CorpusConfig, streaming: bool) -> tuple[Iterable[str], int | None]:
    """The corpus's usable file paths, and how many there are (None when streamed)."""
    if streaming:
        rows = stream_corpus(corpus)
        return (row["path"] for row in rows), None
    index = build_corpus_index(corpus)
    paths = arrow_table(index, ["path"]).column("path").to_pylist()
    return paths, len(paths)


@dataclass
class MiningReport:
    """What a :func:`mine_corpus` call found (over the whole manifest, resumed runs included)."""

    manifest: Path
    files: int = 0
    unreadable: int = 0
    segments: dict[str, int] = field(default_factory=dict)  # rows per absent class
    seconds: float = 0.0  # audio scanned


def mine_corpus(
    model: PresenceClassifier,
    corpus: CorpusConfig,
    manifest: str | os.PathLike,
    config: MiningConfig,
    *,
    streaming: bool = False,
    progress: bool = True,
) -> MiningReport:
    """Scan `corpus` with `model` and write the manifest of absent-class segments.

    Resumable: rerunning with the same arguments continues where a killed run stopped (rows of
    the file in progress are dropped and that file is redone). Different settings on an
    existing manifest are refused rather than mixed. Nothing is written into the corpus.

    Args:
        model: presence classifier (eval mode is set here; on the device it is on).
        corpus: the unlabeled corpus (folder or manifest), indexed unless `streaming`.
        manifest: output JSON-lines file; ``<manifest>.done`` and ``.settings.json`` go next
            to it.
    """
    manifest = Path(manifest).expanduser().resolve()
    root = source_path(corpus)
    if root.is_dir() and manifest.is_relative_to(root):
        raise ValueError(f"the manifest {manifest} must not be inside the corpus {root}")
    c = model.config
    wanted = config.classes or list(c.classes)
    unknown = sorted(set(wanted) - set(c.classes))
    if unknown:
        raise ValueError(f"mining.classes {unknown} are not classes of the model {c.classes}")
    classes = [c.classes.index(name) for name in wanted]
    grid = SegmentGrid.create(config, c.window, c.window_hop, c.sample_rate)

    settings = {
        "corpus": str(root),
        # MiningConfig's own fields only: a recipe may pass a subclass with where-to fields.
        "mining": {f.name: getattr(config, f.name) for f in dataclasses.fields(MiningConfig)}
        | {"classes": wanted},
        "model": dataclasses.asdict(c),
    }
    manifest.parent.mkdir(parents=True, exist_ok=True)
    saved = _settings_path(manifest)
    if saved.is_file() and json.loads(saved.read_text()) != settings:
        raise ValueError(
            f"{manifest} was mined with other settings ({saved}); choose another output or "
            "delete the old manifest, its .done and .settings.json files"
        )
    saved.write_text(json.dumps(settings, indent=2) + "\n")

    done_file = _done_path(manifest)
    done = set(done_file.read_text().splitlines()) - {""} if done_file.is_file() else set()
    # Keep only the rows of finished files: a kill between a file's rows and its done entry
    # leaves partial rows, which the rerun rewrites.
    kept = [row for row in _read_jsonl(manifest) if row.get("path") in done]
    tmp = manifest.with_name(manifest.name + ".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in kept))
    tmp.replace(manifest)

    report = MiningReport(manifest, files=len(done))
    report.segments = dict(Counter(row["absent"] for row in kept))
    paths, total = _corpus_paths(corpus, streaming)
    model.eval()
    bar = tqdm(total=total, initial=len(done), desc="mining", unit="file", disable=not progress)
    with open(manifest, "a") as rows_out, open(_done_path(manifest), "a") as done_out:
        for path in paths:
            if path in done:
                continue
            try:
                rows, seconds = mine_file(model, path, config, grid, classes)
                report.seconds += seconds
            except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
                log.warning("skipping unreadable file %s: %s", path, err)
                rows = []
                report.unreadable += 1
            _append(rows_out, "".join(json.dumps(row) + "\n" for row in rows))
            _append(done_out, path + "\n")
            done.add(path)
            report.files += 1
            for row in rows:
                report.segments[row["absent"]] = report.segments.get(row["absent"], 0) + 1
            bar.update(1)
            bar.set_postfix(segments=sum(report.segments.values()))
    bar.close()
    return report


# ------------------------------------------------------------------------------------------
# Reading a mined manifest and remixing labeled sources into it


@dataclass(frozen=True)
class Segment:
    """One mined segment: frames [start, start + frames) of `path` at `sample_rate` lack
    class `absent`."""

    path: str
    start: int
    frames: int
    sample_rate: int
    absent: str
    confidence: float

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def read_mined(
    manifest: str | os.PathLike,
    *,
    classes: Sequence[str] | None = None,
    min_confidence: float = 0.0,
) -> list[Segment]:
    """The segments of a mined manifest, optionally only some classes and a higher
    confidence (filtering a manifest mined at threshold c by c' ≥ c is the same as mining at
    c')."""
    path = Path(manifest).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"mined manifest {path} does not exist (run pretrain/mine.py)")
    keep = set(classes) if classes else None
    return [
        Segment(
            row["path"],
            int(row["start"]),
            int(row["frames"]),
            int(row["sample_rate"]),
            row["absent"],
            float(row["confidence"]),
        )
        for row in _read_jsonl(path)
        if (keep is None or row["absent"] in keep) and row["confidence"] >= min_confidence
    ]


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return x / np.float32(rms) if rms > 0 else x


class RemixDataset(Dataset):
    """Weakly supervised examples x' = x_u + g·s_i from mined segments (reference §5).

    Item ``(epoch, i)`` is a pure function of (seed, epoch, i): segment ``order[i mod n]`` of a
    permutation keyed on (seed, epoch); a random crop x_u of `clip_config.duration` inside it,
    scaled to unit RMS; a clip s_i of the absent class from the labeled pools, scaled to unit
    RMS, times a gain g drawn from `gain_db`. Returns ``{"mixture": (T,), "references": (2, T)
    = (g·s_i, x_u), "prompts": [class i, background prompt]}``.

    Args:
        segments: from :func:`read_mined`; every absent class needs a pool.
        pools: labeled pools (a ``class`` column).
        background_prompt: the prompt naming "everything else", per class (a mapping) or one
            name for all.
        length: items per epoch; default the number of segments.
    """

    def __init__(
        self,
        segments: Sequence[Segment],
        pools: CorpusIndex,
        clip_config: ClipConfig,
        *,
        gain_db: Sequence[float] = (-10.0, 0.0),
        background_prompt: str | Mapping[str, str] = "rest",
        seed: int = 0,
        length: int | None = None,
    ) -> None:
        if not segments:
            raise ValueError("no mined segments to remix into (empty manifest or all filtered)")
        if clip_config.channels == "stereo":
            raise ValueError("remixing supports mono clips (clips.channels != 'stereo')")
        self.segments = list(segments)
        self.clip_config = dataclasses.replace(clip_config, normalize="none")
        self.gain_db, self.seed = tuple(gain_db), seed
        self.background_prompt = background_prompt
        self.length = length or len(self.segments)
        short = [s for s in self.segments if s.seconds + 1e-6 < clip_config.duration]
        if short:
            raise ValueError(
                f"{len(short)} mined segments are shorter than clips.duration="
                f"{clip_config.duration} s (e.g. {short[0].seconds} s): mine longer segments "
                "or train on shorter clips"
            )
        table = arrow_table(pools)
        if "class" not in table.column_names:
            raise ValueError("remixing needs labeled pools (a `class` column)")
        self.sampler = ClipSampler(table, self.clip_config)
        labels = np.asarray(table.column("class").to_pylist(), dtype=object)
        self.pools = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
        missing = sorted({s.absent for s in self.segments} - set(self.pools))
        if missing:
            raise ValueError(
                f"mined classes {missing} have no labeled pool (pools: {sorted(self.pools)}); "
                "restrict semisup.classes"
            )

    def __len__(self) -> int:
        return self.length

    def background_for(self, name: str) -> str:
        if isinstance(self.background_prompt, str):
            return self.background_prompt
        return self.background_prompt[name]

    def _order(self, epoch: int) -> np.ndarray:
        return keyed_rng(self.seed, STREAM_REMIX, epoch).permutation(len(self.segments))

    def _crop(self, rng: np.random.Generator, segment: Segment) -> np.ndarray:
        """A random crop x_u of the segment, (T,) at the clip rate. A segment passed the
        miner's silence cut as a whole, but a shorter crop of it can still be silent: such
        crops are redrawn (up to `max_attempts`; the loudest is kept)."""
        cfg = self.clip_config
        # Offsets on a grid where file frames and clip samples coincide (e.g. 10 ms for 44.1 kHz
        # files at 8 kHz), so the crop is exactly that span of the resampled recording.
        step = cfg.sample_rate // math.gcd(segment.sample_rate, cfg.sample_rate)
        spare = round(segment.seconds * cfg.sample_rate) - cfg.num_frames
        best, best_db = None, -math.inf
        for _ in range(cfg.max_attempts):
            offset = step * int(rng.integers(0, max(0, spare) // step + 1))
            start = segment.start + offset * segment.sample_rate // cfg.sample_rate
            crop = load_span(segment.path, start, cfg.num_frames, cfg.sample_rate)[0]
            power = float(np.mean(np.square(crop, dtype=np.float64)))
            level = 10 * math.log10(power) if power > 0 else -math.inf
            if level >= cfg.silence_threshold_db:
                return crop
            if best is None or level > best_db:
                best, best_db = crop, level
        return best

    def __getitem__(self, key: int | Sequence[int]) -> dict[str, Any]:
        epoch, i = parse_key(key)[:2]
        segment = self.segments[int(self._order(epoch)[i % len(self.segments)])]
        rng = keyed_rng(self.seed, STREAM_REMIX, epoch, i)
        background = self._crop(rng, segment)
        pool = self.pools[segment.absent]
        source = self.sampler.draw(rng, int(pool[rng.integers(len(pool))]), pool)[0]
        gain = np.float32(10 ** (rng.uniform(*self.gain_db) / 20))
        references = torch.from_numpy(np.stack([_unit_rms(source) * gain, _unit_rms(background)]))
        return {
            "mixture": references.sum(0),
            "references": references,
            "prompts": [segment.absent, self.background_for(segment.absent)],
        }


def collate_remix(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"mixture": (B, T), "references": (B, 2, T), "prompts": B × [class, background],
    "kind": "remix"}``; `kind` tells a combined objective which loss to apply."""
    return {
        "mixture": torch.stack([item["mixture"] for item in items]),
        "references": torch.stack([item["references"] for item in items]),
        "prompts": [item["prompts"] for item in items],
        "kind": "remix",
    }


def build_remix_loader(
    dataset: RemixDataset,
    batch_size: int,
    *,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[DataLoader, ResumableBatchSampler]:
    """A resumable, rank-aware loader of remix batches (see :func:`collate_remix`)."""
    if len(dataset) < batch_size * world_size:
        dataset.length = batch_size * world_size  # a tiny manifest still fills a batch
    sampler = ResumableBatchSampler(len(dataset), batch_size, rank=rank, world_size=world_size)
    loader = keyed_loader(dataset, sampler, collate_remix, num_workers, dataset.seed)  # type: ignore[arg-type]
    return loader, sampler


# ------------------------------------------------------------------------------------------
# Measuring a miner: synthetic tracks with known silent spans


def _active_extent(x: np.ndarray, floor_db: float = -60.0) -> tuple[int, int]:
    """First and one-past-last sample above `floor_db` relative to the peak."""
    loud = np.flatnonzero(np.abs(x) > np.max(np.abs(x)) * 10 ** (floor_db / 20))
    return (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, 0)


def write_truth_corpus(
    out_dir: str | os.PathLike,
    *,
    classes: Sequence[str] = ("speech", "sfx", "sfxbg", "musicbg"),
    tracks: int = 24,
    seconds: float = 20.0,
    sample_rate: int = 16000,
    seed: int = 0,
) -> Path:
    """Synthetic recordings with known per-class activity, for :func:`score_mining`.

    Each track is `seconds` long: for every class, 0–3 events (a demo source of 1–5 s, or one
    sound event for ``sfx``) at random places and gains, over a faint noise floor (−50 dBFS)
    so that no segment is silent. An event's span is where it is within 60 dB of its own
    peak; outside every span of a class that class is silent. Writes ``tracks/*.wav`` and
    ``truth.jsonl`` (``{"path", "seconds", "active": {class: [[start, end], ...]}}``, times
    in seconds, paths relative to `out_dir`) and returns `out_dir`.
    """
    out = Path(out_dir).expanduser().resolve()
    (out / "tracks").mkdir(parents=True, exist_ok=True)
    n = round(seconds * sample_rate)
    rows = []
    for t in range(tracks):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 7, t]))
        mix = 10 ** (-50 / 20) * rng.standard_normal(n)  # above the miner's silence cut
        active: dict[str, list[list[float]]] = {}
        for name in classes:
            spans = []
            for _ in range(int(rng.integers(0, 4))):
                length = rng.uniform(0.6, 1.2) if name == "sfx" else rng.uniform(1.0, 5.0)
                x = synthesise(name, rng, sample_rate, length).astype(np.float64)
                lo, hi = _active_extent(x)
                x = _unit_rms(x[lo:hi]) * 0.1 * 10 ** (rng.uniform(-10, 0) / 20)
                start = int(rng.integers(0, n - len(x) + 1))
                mix[start : start + len(x)] += x
                spans.append([start / sample_rate, (start + len(x)) / sample_rate])
            active[name] = sorted(spans)
        rel = f"tracks/track_{t:04d}.wav"
        sf.write(out / rel, (mix / max(1.0, np.max(np.abs(mix)))).astype(np.float32), sample_rate)
        rows.append({"path": rel, "seconds": seconds, "active": active})
    (out / "truth.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return out


@dataclass
class MiningScore:
    """Counts over candidate (segment, class) pairs; absent = positive."""

    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positive + self.false_positive
        return self.true_positive / found if found else math.nan

    @property
    def recall(self) -> float:
        absent = self.true_positive + self.false_negative
        return self.true_positive / absent if absent else math.nan


def score_mining(
    rows: Iterable[Mapping[str, Any]],
    truth: str | os.PathLike,
    segment_seconds: float,
    hop_seconds: float | None = None,
) -> dict[str, MiningScore]:
    """Precision and recall of mined rows against a :func:`write_truth_corpus` truth file.

    Candidates are the segments of the miner's grid (starts k·hop, whole segments only); a
    candidate is truly absent for a class when no active span of that class overlaps it.
    Precision = mined rows truly absent / mined rows; recall = mined rows truly absent /
    candidates truly absent. Returns a score per class and ``"all"``.
    """
    truth_path = Path(truth).expanduser().resolve()
    hop = hop_seconds or segment_seconds
    mined: dict[tuple[str, str], set[int]] = defaultdict(set)
    for row in rows:
        key = (str(Path(row["path"]).resolve()), row["absent"])
        mined[key].add(round(row["start_seconds"] / hop))
    scores: dict[str, MiningScore] = defaultdict(MiningScore)
    for item in _read_jsonl(truth_path):
        path = str((truth_path.parent / item["path"]).resolve())
        count = math.floor((item["seconds"] - segment_seconds) / hop + 1e-9) + 1
        for name, spans in item["active"].items():
            found = mined.get((path, name), set())
            for k in range(max(0, count)):
                start, end = k * hop, k * hop + segment_seconds
                absent = not any(s < end and e > start for s, e in spans)
                hit = k in found
                for score in (scores[name], scores["all"]):
                    score.true_positive += hit and absent
                    score.false_positive += hit and not absent
                    score.false_negative += absent and not hit
    return dict(scores)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wildsep.data.mining",
        description="Synthetic tracks with known silent spans, and precision/recall of a miner.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    truth = commands.add_parser("truth", help="write a truth corpus (tracks/ + truth.jsonl)")
    truth.add_argument("out_dir")
    truth.add_argument("--tracks", type=int, default=24)
    truth.add_argument("--seconds", type=float, default=20.0)
    truth.add_argument("--sample-rate", type=int, default=16000)
    truth.add_argument("--seed", type=int, default=0)
    truth.add_argument("--classes", nargs="+", default=["speech", "sfx", "sfxbg", "musicbg"])
    score = commands.add_parser("score", help="precision/recall of a mined manifest")
    score.add_argument("manifest", help="mined manifest (its .settings.json gives the grid)")
    score.add_argument("truth", help="truth.jsonl of a truth corpus")
    score.add_argument("--confidence", type=float, nargs="+", default=None)
    args = parser.parse_args(argv)
    if args.command == "truth":
        out = write_truth_corpus(
            args.out_dir,
            classes=args.classes,
            tracks=args.tracks,
            seconds=args.seconds,
            sample_rate=args.sample_rate,
            seed=args.seed,
        )
        print(f"wrote {args.tracks} tracks and truth.jsonl to {out}")
        return 0
    manifest = Path(args.manifest)
    mining = json.loads(_settings_path(manifest).read_text())["mining"]
    rows = _read_jsonl(manifest)
    print("| confidence | class | precision | recall | mined | truly absent |")
    print("|---|---|---|---|---|---|")
    for level in args.confidence or [mining["confidence"]]:
        kept = [row for row in rows if row["confidence"] >= level - 1e-7]
        scores = score_mining(
            kept, args.truth, mining["segment_seconds"], mining["segment_hop_seconds"]
        )
        for name, s in sorted(scores.items(), key=lambda kv: (kv[0] == "all", kv[0])):
            print(
                f"| {level:g} | {name} | {s.precision:.3f} | {s.recall:.3f} | "
                f"{s.true_positive + s.false_positive} | {s.true_positive + s.false_negative} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
