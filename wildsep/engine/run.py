"""What every recipe does around the Trainer: guard the run directory, start from given
weights, and hand the engine a data source it can position."""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from torch import nn

from wildsep.config import ConfigError, save_config
from wildsep.engine.checkpoint import list_checkpoints
from wildsep.engine.trainer import Batch, BatchSource

CONFIG_FILE = "config.yaml"


def run_recipe(main: Callable[[], object]) -> None:
    """A recipe's `__main__`: INFO logging, and user mistakes (a bad config, a missing file, an
    incompatible checkpoint) as one `error: ...` line and a non-zero exit, not a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        main()
    except (ConfigError, FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")


def prepare_run_dir(run_dir: Path, config: Any, resume: bool, is_main: bool) -> None:
    """Create `run_dir` and save the config, refusing to mix two runs in one folder.

    An existing run may be resumed (or extended, e.g. with more steps) only with the same
    `model` section; without `resume`, a folder holding checkpoints is refused rather than
    overwritten.
    """
    saved = run_dir / CONFIG_FILE
    if saved.is_file() and list_checkpoints(run_dir):
        if not resume:
            raise ConfigError(
                f"{run_dir} already holds checkpoints of a run; choose another run_dir, or set "
                "train.resume=true to continue it"
            )
        previous = OmegaConf.load(saved).get("model")
        current = OmegaConf.structured(config).get("model")
        if previous != current:
            raise ConfigError(
                f"{run_dir} holds a run with a different model ({OmegaConf.to_yaml(previous)}); "
                "its checkpoints cannot be resumed with this config: choose another run_dir"
            )
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, saved)


def initialise_from(model: nn.Module, path: str | Path) -> None:
    """Copy the weights of the exported model at `path` into `model` (same class and config)."""
    from wildsep.models import load_pretrained

    source = load_pretrained(path)  # a damaged folder is a one-line CheckpointError
    if type(source) is not type(model) or source.config != model.config:
        ours, theirs = dataclasses.asdict(model.config), dataclasses.asdict(source.config)
        differ = {k: (theirs.get(k), v) for k, v in ours.items() if theirs.get(k) != v}
        raise ValueError(
            f"cannot initialise a {type(model).__name__} from the {type(source).__name__} at "
            f"{path}: config fields differ (found, expected): {differ}"
        )
    model.load_state_dict(source.state_dict())


def positioned_batches(loader: Any, sampler: Any) -> BatchSource:
    """Adapt a DataLoader over a resumable batch sampler (`len`, `load_state_dict({"epoch",
    "step"})`) to the engine's data source: batches from any position on, forever."""

    def source(position: int) -> Iterator[Batch]:
        per_epoch = len(sampler)
        sampler.load_state_dict({"epoch": position // per_epoch, "step": position % per_epoch})
        while True:
            yield from loader

    return source
