"""Mine an unlabeled corpus for segments where a class is absent, with a trained presence
classifier; writes the manifest that the `semisup` section of the training recipes reads.

    python pretrain/mine.py configs/demo_presence.yaml [key=value ...]

Uses the `mining` section of the presence config (corpus, segment length, confidence; the
classifier defaults to `run_dir/model`, the manifest to `run_dir/mined.jsonl`). Shows a
progress bar; a killed run continues where it stopped when started again. See
docs/pretraining.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pretrain.presence import PresenceRecipeConfig
from wildsep.config import load_config
from wildsep.data import MiningReport, mine_corpus
from wildsep.engine import run_recipe
from wildsep.models import PresenceClassifier
from wildsep.models.pretrained import resolve_model_dir


def main(argv: list[str] | None = None) -> MiningReport:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="presence config, e.g. configs/demo_presence.yaml")
    parser.add_argument(
        "overrides", nargs="*", help="key=value overrides, e.g. mining.confidence=0.95"
    )
    args = parser.parse_args(argv)
    config = load_config(PresenceRecipeConfig, args.config, args.overrides)
    mining = config.mining
    run_dir = Path(config.run_dir)
    model = PresenceClassifier.from_pretrained(resolve_model_dir(mining.model or run_dir))
    output = Path(mining.output) if mining.output else run_dir / "mined.jsonl"
    report = mine_corpus(
        model.to(mining.device), mining.corpus, output, mining, streaming=mining.streaming
    )
    total = sum(report.segments.values())
    print(
        f"{report.files} files ({report.seconds / 3600:.2f} h scanned in this run, "
        f"{report.unreadable} unreadable): {total} segments {dict(sorted(report.segments.items()))}"
        f" → {report.manifest}"
    )
    return report


if __name__ == "__main__":
    run_recipe(main)
