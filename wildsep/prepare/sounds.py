"""Sound-event and ambience corpora: FUSS, FSD50K, DEMAND, and in-the-wild clip lists
(YFCC100M / AudioSet style) for unsupervised pre-training.

Single sound events are `sfx`; ambiences and noise recordings are `sfxbg` (the TUSS
"SFX-mix" class).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Container
from pathlib import Path

from wildsep.data.audio_io import AUDIO_EXTENSIONS
from wildsep.prepare.output import Prepared
from wildsep.prepare.recipe import Option, Recipe, audio_in, locate

# ---------------------------------------------------------------------------------------------
# FUSS

_FUSS_LAYOUT = (
    "ssdata_reverb/ (or ssdata/) with {train,validation,eval}/exampleNNNNN.wav, "
    "exampleNNNNN_sources/{background0,foreground0,…}_sound.wav and <split>_example_list.txt"
)
_FUSS_SPLITS = {"train": "train", "validation": "valid", "eval": "test"}


def _fuss_examples(base: Path, split: str, out: Prepared) -> list[tuple[Path, list[Path]]]:
    """(mixture, sources) of a split: from `<split>_example_list.txt` (tab-separated paths
    relative to the data folder, mixture first) when present, else from the folders."""
    listing = base / f"{split}_example_list.txt"
    if listing.is_file():
        examples = []
        for number, line in enumerate(listing.read_text().splitlines(), 1):
            fields = [f for f in line.strip().split("\t") if f]
            if len(fields) < 2:
                if fields:
                    out.skip(f"{listing}:{number}", "malformed line: need mixture and sources")
                continue
            examples.append((base / fields[0], [base / f for f in fields[1:]]))
        return examples
    return [
        (mixture, audio_in(mixture.with_name(f"{mixture.stem}_sources")))
        for mixture in audio_in(base / split)
    ]


def prepare_fuss(out: Prepared, options: dict[str, str]) -> None:
    """Validation and eval mixtures become the sets `fuss_validation` and `fuss_eval` (every
    source is `sfx`: FUSS draws foregrounds and backgrounds alike from FSD50K events); train
    mixtures the unlabeled corpus (MixIT on FUSS); train sources the `sfx` pool."""
    folder = "ssdata_reverb" if options["variant"] == "reverb" else "ssdata"
    base = locate(
        out.root,
        "FUSS",
        _FUSS_LAYOUT,
        lambda p: p.name == folder and any((p / s).is_dir() for s in _FUSS_SPLITS),
        folder,
    )
    for split, role in _FUSS_SPLITS.items():
        for mixture, sources in _fuss_examples(base, split, out):
            if not sources:
                out.skip(mixture, "missing: no source files")
                continue
            if not out.all_present([mixture, *sources], "listed but not on disk"):
                continue
            if role == "train":
                out.unlabeled("train", mixture)
                for source in sources:
                    kind = re.sub(r"\d*_sound$", "", source.stem)  # background / foreground
                    out.pool("train", source, "sfx", label=kind)
            else:
                classes = ["sfx"] * len(sources)
                out.example(f"fuss_{split}", mixture.stem, sources, classes, mixture)


FUSS = Recipe(
    "fuss",
    "FUSS",
    _FUSS_LAYOUT,
    prepare_fuss,
    {"variant": Option(("reverb", "dry"), "ssdata_reverb (the FUSS benchmark) or ssdata")},
)


# ---------------------------------------------------------------------------------------------
# FSD50K

_FSD50K_LAYOUT = (
    "FSD50K.dev_audio/<id>.wav, FSD50K.eval_audio/<id>.wav and FSD50K.ground_truth/{dev,eval}.csv"
)
# Clips labeled with speech or music are not sound effects for TUSS (speech and music have
# their own classes and corpora). FSD50K labels include every ancestor in the AudioSet
# ontology, so the parents suffice; the children are listed for label files without them.
SPEECH_LABELS = frozenset(
    {
        "Speech",
        "Male_speech_and_man_speaking",
        "Female_speech_and_woman_speaking",
        "Child_speech_and_kid_speaking",
        "Conversation",
        "Speech_synthesizer",
    }
)
MUSIC_LABELS = frozenset(
    {"Music", "Musical_instrument", "Singing", "Male_singing", "Female_singing", "Chant"}
)


def fsd50k_class(labels: list[str]) -> str | None:
    """`sfx`, or None for a clip with a speech or music label (see SPEECH/MUSIC_LABELS)."""
    return None if set(labels) & (SPEECH_LABELS | MUSIC_LABELS) else "sfx"


def prepare_fsd50k(out: Prepared, options: dict[str, str]) -> None:
    base = locate(
        out.root,
        "FSD50K",
        _FSD50K_LAYOUT,
        lambda p: (p / "FSD50K.ground_truth" / "dev.csv").is_file(),
    )
    truth = base / "FSD50K.ground_truth"
    keep_all = options["speech-music"] == "keep"
    for table, audio in (("dev", "FSD50K.dev_audio"), ("eval", "FSD50K.eval_audio")):
        path = truth / f"{table}.csv"
        if not path.is_file():
            out.skip(path, "missing: ground-truth table")
            continue
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                labels = [x for x in (row.get("labels") or "").split(",") if x]
                if not keep_all and fsd50k_class(labels) is None:
                    out.exclude("speech or music label")
                    continue
                split = {"train": "train", "val": "valid"}.get(row.get("split", ""), "test")
                file = base / audio / f"{row['fname']}.wav"
                out.pool(split, file, "sfx", label=",".join(labels))


FSD50K = Recipe(
    "fsd50k",
    "FSD50K",
    _FSD50K_LAYOUT,
    prepare_fsd50k,
    {"speech-music": Option(("exclude", "keep"), "clips labeled with speech or music")},
)


# ---------------------------------------------------------------------------------------------
# DEMAND

_DEMAND_LAYOUT = "one folder per environment (DKITCHEN/, NPARK/, …) with ch01.wav … ch16.wav"


def _demand_environments(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "ch01.wav").exists())


def prepare_demand(out: Prepared, options: dict[str, str]) -> None:
    """Each environment's recording as an `sfxbg` pool file: channel 1 by default (the 16
    channels of the array hold nearly the same sound), or every channel."""
    base = locate(out.root, "DEMAND", _DEMAND_LAYOUT, lambda p: bool(_demand_environments(p)))
    for environment in _demand_environments(base):
        channels = audio_in(environment, (".wav",))
        if options["channels"] == "first":
            channels = [c for c in channels if c.name == "ch01.wav"]
        for path in channels:
            out.pool("train", path, "sfxbg", label=environment.name)


DEMAND = Recipe(
    "demand",
    "DEMAND",
    _DEMAND_LAYOUT,
    prepare_demand,
    {"channels": Option(("first", "all"), "channel 1 of each environment, or all 16")},
)


# ---------------------------------------------------------------------------------------------
# In-the-wild clips (YFCC100M, AudioSet): the unlabeled pre-training corpus

_CLIPS_LAYOUT = (
    "a folder of audio clips, optionally with AudioSet segment lists (*_segments.csv: YTID, "
    "start_seconds, end_seconds, positive_labels) and class_labels_indices.csv"
)
_YTID = 11  # YouTube ids are 11 characters (letters, digits, '-', '_')


def _read_segments(path: Path) -> dict[str, dict[str, str]]:
    """AudioSet's segment list: '#' comment lines, then `YTID, start, end, "mid,mid"`."""
    rows = {}
    with open(path, newline="") as f:
        lines = (line for line in f if not line.startswith("#") and line.strip())
        for fields in csv.reader(lines, skipinitialspace=True):
            if len(fields) >= 4:
                rows[fields[0]] = {"start": fields[1], "end": fields[2], "labels": fields[3]}
    return rows


def _youtube_id(stem: str, known: Container[str]) -> str | None:
    """The segment a downloaded clip is of: files are named `<YTID>…` or `Y<YTID>…`."""
    for candidate in (stem[:_YTID], stem[1 : _YTID + 1] if stem.startswith("Y") else ""):
        if candidate in known:
            return candidate
    return None


def prepare_clips(out: Prepared, options: dict[str, str]) -> None:
    """Every audio file under ROOT becomes a row of `unlabeled_train.csv`. With AudioSet
    segment lists, clips are matched to their segment by YouTube id (labels and times become
    columns, names from class_labels_indices.csv), `eval_segments.csv` clips go to
    `unlabeled_eval.csv`, and listed segments without a file are reported as missing."""
    root = out.root
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in AUDIO_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    lists = {p: _read_segments(p) for p in sorted(root.glob("*_segments.csv"))}
    if not lists:
        for path in files:
            out.unlabeled("train", path)
        return
    names: dict[str, str] = {}
    indices = root / "class_labels_indices.csv"
    if indices.is_file():
        with open(indices, newline="") as f:
            names = {r["mid"]: r["display_name"] for r in csv.DictReader(f)}
    segments = {ytid: (p, row) for p, rows in lists.items() for ytid, row in rows.items()}
    found: set[str] = set()
    for path in files:
        ytid = _youtube_id(path.stem, segments)
        if ytid is None:
            out.skip(path, "not in any AudioSet segment list")
            continue
        found.add(ytid)
        listing, row = segments[ytid]
        split = "eval" if listing.name.startswith("eval") else "train"
        mids = [m for m in row["labels"].split(",") if m]
        out.unlabeled(
            split,
            path,
            ytid=ytid,
            start=row["start"],
            end=row["end"],
            labels=",".join(names.get(m, m) for m in mids),
        )
    for ytid in sorted(set(segments) - found):
        out.skip(f"{segments[ytid][0].name}:{ytid}", "missing: listed segment not downloaded")


CLIPS = Recipe("clips", "in-the-wild clips (YFCC100M, AudioSet)", _CLIPS_LAYOUT, prepare_clips)
