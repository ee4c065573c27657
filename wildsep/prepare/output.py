"""What a corpus recipe produces, checked and written in the project's input formats.

A recipe walks a local copy of a corpus (ROOT) and declares, through a `Prepared`:

- labeled pool files (`pool`): rows of `pools_<split>.csv` (columns `path`, `class`, `label`,
  `corpus`), the TUSS dynamic-mixing input (docs/data.md (b));
- unlabeled clips (`unlabeled`): rows of `unlabeled_<split>.csv` (column `path`, plus
  metadata), the MixIT input (docs/data.md (a));
- evaluation mixtures (`example`): lines of `<set>.jsonl` (`mixture`, `references`, `classes`,
  `name`), the evaluation-set format (docs/data.md (c));
- files it could not use (`skip`) and audio it had to compute (`derive`, under OUT/derived/).

`finish` probes every declared audio file (header checks in parallel, or a full decode with
`validate`), drops bad files — and every evaluation mixture that has one — with their reason
into `skipped.csv`, and writes everything under OUT. Paths in the outputs are absolute, so the
manifests work wherever OUT is. Nothing is ever written into ROOT.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from wildsep.data.audio_io import FileCheck, check_audio_file

MARKER = "prepare.json"  # what `wildsep prepare` leaves in OUT; a folder with it may be reused


class PrepareError(ValueError):
    """A problem that stops a recipe before anything is written; the message is one line."""


def _is_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@dataclass
class Example:
    """One evaluation mixture of a set."""

    name: str
    mixture: Path | None
    references: list[Path]
    classes: list[str]


@dataclass
class Prepared:
    """The outputs of one recipe run on `root`, written under `out` by `finish`."""

    corpus: str
    root: Path
    out: Path
    options: dict[str, str] = field(default_factory=dict)
    pools: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    clips: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    sets: dict[str, list[Example]] = field(default_factory=lambda: defaultdict(list))
    skipped: list[tuple[str, str]] = field(default_factory=list)
    excluded: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.root = self.root.expanduser().resolve()
        self.out = self.out.expanduser().resolve()
        if not self.root.is_dir():
            raise PrepareError(f"corpus folder {self.root} does not exist or is not a folder")
        if _is_inside(self.out, self.root):
            raise PrepareError(
                f"--out {self.out} is inside the corpus folder {self.root}; nothing is ever "
                "written into a corpus: choose a folder outside it"
            )
        if self.out.exists():
            if not self.out.is_dir():
                raise PrepareError(f"--out {self.out} is a file")
            if any(self.out.iterdir()) and not (self.out / MARKER).is_file():
                raise PrepareError(
                    f"--out {self.out} holds files that `wildsep prepare` did not write; "
                    "choose an empty or new folder"
                )

    # ----------------------------------------------------------------------------- declaring

    def pool(self, split: str, path: Path, cls: str, label: str = "", **meta: Any) -> None:
        """A labeled source file of class `cls` (a TUSS class name) for `pools_<split>.csv`."""
        self.pools[split].append(
            {"path": Path(path), "class": cls, "label": label, "corpus": self.corpus, **meta}
        )

    def unlabeled(self, split: str, path: Path, **meta: Any) -> None:
        """An unlabeled clip for `unlabeled_<split>.csv`."""
        self.clips[split].append({"path": Path(path), "corpus": self.corpus, **meta})

    def example(
        self,
        set_name: str,
        name: str,
        references: list[Path],
        classes: list[str],
        mixture: Path | None = None,
    ) -> None:
        """An evaluation mixture of `<set_name>.jsonl`; `mixture` None = sum of references."""
        self.sets[set_name].append(Example(name, mixture, list(references), list(classes)))

    def skip(self, path: Path | str, reason: str) -> None:
        """A file (or listed entry) the recipe cannot use; reported in skipped.csv."""
        self.skipped.append((str(path), reason))

    def all_present(self, paths: list[Path], reason: str) -> bool:
        """Whether every file exists; if not, the first missing one is skipped with `reason`."""
        missing = next((p for p in paths if not p.is_file()), None)
        if missing is not None:
            self.skip(missing, f"missing: {reason}")
        return missing is None

    def exclude(self, reason: str) -> None:
        """A usable file left out on purpose (e.g. FSD50K clips with music); only counted."""
        self.excluded[reason] += 1

    def derive(self, relative: str, audio: np.ndarray, sample_rate: int) -> Path:
        """Write computed audio (T,) or (T, C) as float WAV under OUT/derived/; its path."""
        path = self.out / "derived" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.part")
        sf.write(str(partial), audio, sample_rate, subtype="FLOAT", format="WAV")
        os.replace(partial, path)
        return path

    # ----------------------------------------------------------------------------- writing

    def _check(self, validate: bool, workers: int) -> dict[Path, FileCheck]:
        files = {row["path"] for rows in self.pools.values() for row in rows}
        files |= {row["path"] for rows in self.clips.values() for row in rows}
        for examples in self.sets.values():
            for e in examples:
                files.update(e.references)
                if e.mixture is not None:
                    files.add(e.mixture)
        paths = sorted(files)

        def check(path: Path) -> FileCheck:
            return check_audio_file(path, validate_audio=validate)

        with ThreadPoolExecutor(max_workers=workers) as pool:  # libsndfile releases the GIL
            return dict(zip(paths, pool.map(check, paths), strict=True))

    def _usable_example(self, e: Example, checks: dict[Path, FileCheck]) -> bool:
        files = ([e.mixture] if e.mixture is not None else []) + e.references
        bad = [f for f in files if not checks[f].ok]
        if bad:
            self.skip(e.name, f"evaluation mixture dropped: {bad[0]}: {checks[bad[0]].reason}")
            return False
        rates = {checks[f].info.sample_rate for f in files}  # type: ignore[union-attr]
        if len(rates) > 1:
            self.skip(e.name, f"evaluation mixture dropped: sample rates differ {sorted(rates)}")
            return False
        return True

    def finish(self, validate: bool = False, workers: int = 8) -> dict[str, Any]:
        """Check every file, write the outputs and `prepare.json`; the summary it holds."""
        checks = self._check(validate, workers)
        for path, result in checks.items():
            if not result.ok:
                self.skip(path, result.reason or "unusable")
        self.out.mkdir(parents=True, exist_ok=True)
        for stale in self.out.glob("*.csv"):  # a previous run of prepare in this folder
            stale.unlink()
        for stale in self.out.glob("*.jsonl"):
            stale.unlink()
        written: dict[str, int] = {}

        def keep(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{**r, "path": str(r["path"])} for r in rows if checks[r["path"]].ok]

        for prefix, groups in (("pools", self.pools), ("unlabeled", self.clips)):
            for split, rows in sorted(groups.items()):
                kept = keep(rows)
                if kept:
                    name = f"{prefix}_{split}.csv"
                    _write_csv(self.out / name, kept)
                    written[name] = len(kept)
        for set_name, examples in sorted(self.sets.items()):
            kept_examples = [e for e in examples if self._usable_example(e, checks)]
            if kept_examples:
                name = f"{set_name}.jsonl"
                with open(self.out / name, "w") as f:
                    for e in kept_examples:
                        f.write(json.dumps(_example_row(e)) + "\n")
                written[name] = len(kept_examples)
        with open(self.out / "skipped.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "reason"])
            writer.writerows(sorted(set(self.skipped)))
        summary = {
            "corpus": self.corpus,
            "root": str(self.root),
            "options": self.options,
            "validated_audio": validate,
            "written": written,
            "skipped": len(set(self.skipped)),
            "excluded": dict(self.excluded),
        }
        (self.out / MARKER).write_text(json.dumps(summary, indent=2) + "\n")
        return summary


def _example_row(e: Example) -> dict[str, Any]:
    row: dict[str, Any] = {"name": e.name}
    if e.mixture is not None:
        row["mixture"] = str(e.mixture)
    row["references"] = [str(r) for r in e.references]
    row["classes"] = e.classes
    return row


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
