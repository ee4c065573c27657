"""`wildsep prepare CORPUS ROOT --out DIR`: the field's corpora as wildsep's inputs.

A recipe per corpus turns a local copy (downloaded by the user; nothing is fetched) into
labeled pools with TUSS class names (`pools_<split>.csv`), unlabeled corpus manifests
(`unlabeled_<split>.csv`) and evaluation sets with references and classes (`<set>.jsonl`).
Bad or missing files are reported in `skipped.csv` and never stop the rest; nothing is
written into ROOT. See docs/data.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wildsep.prepare.cinema import DNR
from wildsep.prepare.music import FMA, MOISESDB, MUSDB18HQ
from wildsep.prepare.output import Prepared, PrepareError
from wildsep.prepare.recipe import Option, Recipe
from wildsep.prepare.sounds import CLIPS, DEMAND, FSD50K, FUSS
from wildsep.prepare.speech import LIBRIMIX, LIBRISPEECH, VCTK, VOICEBANK_DEMAND, WHAM, WHAM_NOISE

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        FUSS,
        FSD50K,
        WHAM,
        WHAM_NOISE,
        DEMAND,
        VCTK,
        VOICEBANK_DEMAND,
        LIBRISPEECH,
        LIBRIMIX,
        MUSDB18HQ,
        MOISESDB,
        DNR,
        FMA,
        CLIPS,
    )
}
ALIASES = {
    "yfcc100m": "clips",
    "audioset": "clips",
    "musdb": "musdb18hq",
    "vctk-demand": "voicebank-demand",
}

DESCRIPTION = (
    "Turn a local copy of a corpus into wildsep's inputs: pools_<split>.csv, "
    "unlabeled_<split>.csv, <set>.jsonl evaluation sets, skipped.csv and prepare.json."
)

__all__ = ["ALIASES", "RECIPES", "Option", "PrepareError", "Prepared", "Recipe", "prepare"]


def prepare(
    corpus: str,
    root: str | Path,
    out: str | Path,
    options: dict[str, str] | None = None,
    *,
    validate: bool = False,
    workers: int = 8,
) -> dict[str, Any]:
    """Run the recipe `corpus` on ROOT, writing into OUT; returns the summary of prepare.json.

    Args:
        corpus: a name of `RECIPES` (or `ALIASES`).
        options: recipe options (`Recipe.options`); defaults for the rest.
        validate: decode every file fully (finds truncated or NaN audio; slow) instead of
            reading headers.
    Raises:
        PrepareError (one line) when ROOT is not the corpus, OUT is unusable or an option is
        unknown; bad files inside the corpus are reported instead.
    """
    name = ALIASES.get(corpus, corpus)
    if name not in RECIPES:
        known = ", ".join([*RECIPES, *ALIASES])
        raise PrepareError(f"unknown corpus {corpus!r}; known: {known}")
    recipe = RECIPES[name]
    resolved = recipe.resolve_options(options or {})
    prepared = Prepared(recipe.name, Path(root), Path(out), resolved)
    recipe.run(prepared, resolved)
    return prepared.finish(validate=validate, workers=workers)


def _parse_options(pairs: Sequence[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PrepareError(f"options are KEY=VALUE, got {pair!r}")
        options[key] = value
    return options


def _recipes_help() -> str:
    lines = ["corpora:"]
    for r in RECIPES.values():
        opts = "; ".join(f"{k}={'|'.join(o.choices)}" for k, o in r.options.items())
        lines.append(f"  {r.name:<17} {r.corpus}" + (f"  (-o {opts})" if opts else ""))
    lines.append("aliases: " + ", ".join(f"{a}={n}" for a, n in ALIASES.items()))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _recipes_help()
    parser.add_argument("corpus", metavar="CORPUS", help="which corpus (see below)")
    parser.add_argument("root", metavar="ROOT", help="your local copy of the corpus (read only)")
    parser.add_argument("--out", required=True, help="output folder (outside ROOT)")
    parser.add_argument(
        "-o", "--option", action="append", default=[], metavar="KEY=VALUE", help="recipe option"
    )
    parser.add_argument(
        "--validate", action="store_true", help="decode every file fully (slow; finds corruption)"
    )
    parser.add_argument("--workers", type=int, default=8, help="parallel file checks")


def run_command(args: argparse.Namespace) -> int:
    """`wildsep prepare`: returns the exit status."""
    try:
        summary = prepare(
            args.corpus,
            args.root,
            args.out,
            _parse_options(args.option),
            validate=args.validate,
            workers=args.workers,
        )
    except PrepareError as err:
        print(f"wildsep: error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    for name, count in summary["written"].items():
        print(f"{out / name}: {count}")
    if summary["excluded"]:
        print("excluded: " + ", ".join(f"{n} ({r})" for r, n in summary["excluded"].items()))
    if summary["skipped"]:
        print(f"{summary['skipped']} file(s) skipped: see {out / 'skipped.csv'}", file=sys.stderr)
    if not summary["written"]:
        print(f"wildsep: error: nothing usable found in {args.root}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wildsep.prepare", description=DESCRIPTION)
    add_arguments(parser)
    return run_command(parser.parse_args(argv))
