"""Cinematic audio: Divide and Remaster (DnR), the TUSS paper's CASS benchmark.

Each DnR mixture has three stems: dialogue (`speech`), sound effects (`sfxbg`, the TUSS
"SFX-mix": many effects and ambiences summed) and music (`musicbg`, "Music-mix").
"""

from __future__ import annotations

from wildsep.prepare.output import Prepared
from wildsep.prepare.recipe import Recipe, locate

_DNR_LAYOUT = "dnr_v2/{tr,cv,tt}/<id>/{mix,speech,sfx,music}.wav"
DNR_CLASSES = {"speech": "speech", "sfx": "sfxbg", "music": "musicbg"}
_DNR_SPLITS = {"tr": "train", "cv": "valid", "tt": "test"}


def prepare_dnr(out: Prepared, options: dict[str, str]) -> None:
    """`dnr_tt` and `dnr_cv`: mix.wav with speech, sfx and music; `tr` stems become pools."""
    base = locate(
        out.root,
        "DnR",
        _DNR_LAYOUT,
        lambda p: any((p / s).is_dir() for s in _DNR_SPLITS),
        "dnr_v2",
    )
    for folder, split in _DNR_SPLITS.items():
        if not (base / folder).is_dir():
            continue
        for clip in sorted(p for p in (base / folder).iterdir() if p.is_dir()):
            stems = [clip / f"{stem}.wav" for stem in DNR_CLASSES]
            if not out.all_present([clip / "mix.wav", *stems], "a stem of this mixture"):
                continue
            if split == "train":
                for stem, path in zip(DNR_CLASSES.values(), stems, strict=True):
                    out.pool(split, path, stem, label=clip.name)
            else:
                classes = list(DNR_CLASSES.values())
                out.example(f"dnr_{folder}", clip.name, stems, classes, clip / "mix.wav")


DNR = Recipe("dnr", "Divide and Remaster (DnR v2)", _DNR_LAYOUT, prepare_dnr)
