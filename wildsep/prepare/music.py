"""Music corpora: MUSDB18-HQ, MoisesDB (stems) and FMA (full mixes).

Stems map to the TUSS instrument classes `vocals`, `bass`, `drums`, `other`; full mixes
are `musicbg` (the TUSS "Music-mix" class).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from wildsep.prepare.output import Prepared
from wildsep.prepare.recipe import Option, Recipe, audio_in, locate

STEMS = ("vocals", "bass", "drums", "other")

# ---------------------------------------------------------------------------------------------
# MUSDB18-HQ

_MUSDB_LAYOUT = "{train,test}/<Artist - Title>/{mixture,vocals,bass,drums,other}.wav"
# The 14 training tracks that the musdb package and most papers hold out for validation.
MUSDB_VALIDATION_TRACKS = frozenset(
    {
        "Actions - One Minute Smile",
        "Clara Berry And Wooldog - Waltz For My Victims",
        "Johnny Lokke - Promises & Lies",
        "Patrick Talbot - A Reason To Leave",
        "Triviul - Angelsaint",
        "Alexander Ross - Goodbye Bolero",
        "Fergessen - Nos Palpitants",
        "Leaf - Summerghost",
        "Skelpolu - Human Mistakes",
        "Young Griffo - Pennies",
        "ANiMAL - Rockshow",
        "James May - On The Line",
        "Meaxic - Take A Step",
        "Traffic Experiment - Sirens",
    }
)


def prepare_musdb(out: Prepared, options: dict[str, str]) -> None:
    """`musdb18hq_test` (and `musdb18hq_valid`): mixture.wav with the four stems; training
    tracks give stem pools and their mixture as a `musicbg` pool file."""
    base = locate(
        out.root,
        "MUSDB18-HQ",
        _MUSDB_LAYOUT,
        lambda p: (p / "train").is_dir() and (p / "test").is_dir(),
        "musdb18hq",
    )
    for folder in ("train", "test"):
        for track in sorted(p for p in (base / folder).iterdir() if p.is_dir()):
            if folder == "test":
                split = "test"
            else:
                split = "valid" if track.name in MUSDB_VALIDATION_TRACKS else "train"
            stems = [track / f"{stem}.wav" for stem in STEMS]
            if not out.all_present([track / "mixture.wav", *stems], "a stem of this track"):
                continue
            if split == "train":
                for stem, path in zip(STEMS, stems, strict=True):
                    out.pool(split, path, stem, label=track.name)
                out.pool(split, track / "mixture.wav", "musicbg", label=track.name)
            else:
                out.example(
                    f"musdb18hq_{split}", track.name, stems, list(STEMS), track / "mixture.wav"
                )


MUSDB18HQ = Recipe("musdb18hq", "MUSDB18-HQ", _MUSDB_LAYOUT, prepare_musdb)


# ---------------------------------------------------------------------------------------------
# MoisesDB

_MOISESDB_LAYOUT = (
    "moisesdb_v0.1/<song id>/data.json with one folder per stem (vocals/, bass/, drums/, "
    "guitar/, …) holding one <track id>.wav per recorded track"
)
# MoisesDB stem names → TUSS classes (percussion goes with the drums, everything else that is
# not vocals or bass is `other`, as in the four-stem MUSDB convention).
MOISESDB_CLASSES = {"vocals": "vocals", "bass": "bass", "drums": "drums", "percussion": "drums"}


def moisesdb_class(stem: str) -> str:
    return MOISESDB_CLASSES.get(stem.lower(), "other")


def _moisesdb_tracks(song: Path, out: Prepared) -> dict[Path, str]:
    """Audio files of a song with their stem name: from data.json, else from the folders."""
    meta = song / "data.json"
    if meta.is_file():
        try:
            stems = json.loads(meta.read_text())["stems"]
            return {
                song / stem["stemName"] / f"{t['id']}.{t.get('extension', 'wav')}": stem["stemName"]
                for stem in stems
                for t in stem["tracks"]
            }
        except (ValueError, KeyError, TypeError) as err:
            out.skip(meta, f"unreadable data.json ({type(err).__name__}): stems taken from folders")
    return {
        path: folder.name
        for folder in song.iterdir()
        if folder.is_dir()
        for path in audio_in(folder)
    }


def prepare_moisesdb(out: Prepared, options: dict[str, str]) -> None:
    """Every recorded track as a pool file of its stem's TUSS class (label `stem/track type`).
    MoisesDB ships no mixtures: `musicbg` comes from FMA/MUSDB, or from stems on the fly
    (the `musicbg` background of the data config)."""
    base = locate(
        out.root,
        "MoisesDB",
        _MOISESDB_LAYOUT,
        lambda p: any(p.glob("*/data.json")),
        "moisesdb_v0.1",
    )
    for song in sorted(p for p in base.iterdir() if p.is_dir()):
        for path, stem in sorted(_moisesdb_tracks(song, out).items()):
            if not path.is_file():
                out.skip(path, "missing: listed in data.json")
                continue
            out.pool("train", path, moisesdb_class(stem), label=stem, song=song.name)


MOISESDB = Recipe("moisesdb", "MoisesDB", _MOISESDB_LAYOUT, prepare_moisesdb)


# ---------------------------------------------------------------------------------------------
# FMA

_FMA_LAYOUT = "fma_metadata/tracks.csv and fma_small|fma_medium|fma_large|fma_full/NNN/NNNNNN.mp3"
_FMA_SUBSETS = ("small", "medium", "large", "full")
_FMA_SPLITS = {"training": "train", "validation": "valid", "test": "test"}


def read_fma_tracks(path: Path) -> dict[int, dict[str, str]]:
    """tracks.csv: three header rows (column group, column name, then `track_id`); the split
    (`set`/`split`), subset (`set`/`subset`) and top genre (`track`/`genre_top`) per track."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        groups, names = next(reader), next(reader)
        next(reader)
        where = {(g, n): i for i, (g, n) in enumerate(zip(groups, names, strict=True))}
        wanted = {"split": ("set", "split"), "subset": ("set", "subset")}
        wanted["genre"] = ("track", "genre_top")
        tracks = {}
        for row in reader:
            if row and row[0].isdigit():
                tracks[int(row[0])] = {
                    k: row[where[c]] if c in where else "" for k, c in wanted.items()
                }
    return tracks


def prepare_fma(out: Prepared, options: dict[str, str]) -> None:
    """Every track as a `musicbg` pool file (label: its top genre), split as FMA's metadata
    says (training/validation/test); tracks of the subset that are missing are reported."""
    base = locate(
        out.root,
        "FMA",
        _FMA_LAYOUT,
        lambda p: any((p / f"fma_{s}").is_dir() for s in _FMA_SUBSETS),
    )
    present = [s for s in _FMA_SUBSETS if (base / f"fma_{s}").is_dir()]
    subset = present[-1] if options["subset"] == "auto" else options["subset"]
    audio = base / f"fma_{subset}"
    if not audio.is_dir():
        out.skip(audio, f"missing: the fma_{subset} folder (found {present})")
        return
    meta_path = base / "fma_metadata" / "tracks.csv"
    tracks = read_fma_tracks(meta_path) if meta_path.is_file() else {}
    if not tracks:
        out.skip(meta_path, "missing: without tracks.csv every track goes to the train split")
    files = {int(p.stem): p for p in sorted(audio.glob("*/*.mp3")) if p.stem.isdigit()}
    for track_id, path in files.items():
        meta = tracks.get(track_id, {})
        split = _FMA_SPLITS.get(meta.get("split", ""), "train")
        out.pool(split, path, "musicbg", label=meta.get("genre", ""))
    # Subsets nest (small ⊂ medium ⊂ large ⊂ full): a track of this subset should be here.
    members = set(_FMA_SUBSETS[: _FMA_SUBSETS.index(subset) + 1])
    for track_id, meta in sorted(tracks.items()):
        if track_id not in files and (subset == "full" or meta["subset"] in members):
            out.skip(
                audio / f"{track_id:06d}"[:3] / f"{track_id:06d}.mp3", "missing: in tracks.csv"
            )


FMA = Recipe(
    "fma",
    "FMA",
    _FMA_LAYOUT,
    prepare_fma,
    {"subset": Option(("auto", *_FMA_SUBSETS), "which fma_<subset> folder (auto: the largest)")},
)
