"""What every recipe does around the Trainer: seed the run, guard the run directory, start from
given weights, and hand the engine a data source it can position."""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import gc
import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from torch import nn

from wildsep.config import ConfigError, save_config
from wildsep.engine.checkpoint import latest_checkpoint, list_checkpoints
from wildsep.engine.trainer import Batch, BatchSource, TrainConfig, keyed_generator

CONFIG_FILE = "config.yaml"
RUN_MARKER = "wildsep-run.json"  # written when a run directory is created: "this folder is ours"
log = logging.getLogger(__name__)

# Settings a run may be resumed with after they changed: they extend, observe or pace the run
# but do not change what a training step computes. Any other change needs train.allow_changes.
FREE_TO_CHANGE = (
    "run_dir",
    "train.max_steps",
    "train.log_every",
    "train.val_every",
    "train.checkpoint_every",
    "train.keep_last",
    "train.average_last",
    "train.resume",
    "train.allow_changes",
    "stages.*.steps",
    "data.num_workers",
    "data.*.cache_dir",
    "data.*.num_proc",
    "validation.*",
)


def run_recipe(main: Callable[[], object]) -> None:
    """A recipe's `__main__`: INFO logging, and user mistakes and the machine's refusals (a bad
    config, a missing file, an incompatible checkpoint, a full disk) as one `error: ...` line
    and a non-zero exit, not a traceback. A bug still shows its traceback."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        main()
        return
    except (ConfigError, ValueError, OSError) as error:  # FileNotFoundError is an OSError
        message = f"error: {error}"
    except KeyboardInterrupt:
        message = "error: interrupted"
    except Exception:
        traceback.print_exc()
        message = "error: unexpected failure (traceback above)"
    # The exception held the recipe's frames and with them its data loaders; now that it is
    # gone, collect them so their worker processes shut down before the interpreter exits
    # (workers ignore SIGTERM, so multiprocessing's exit handler could not stop them).
    gc.collect()
    sys.exit(message)


def seed_everything(config: TrainConfig) -> None:
    """Seed Python, NumPy and torch (every device) from `train.seed` before anything random
    happens (model initialisation first); with `train.deterministic`, also ask torch for
    deterministic kernels. Call it at the very start of a recipe, on every process."""
    from accelerate.utils import set_seed

    set_seed(config.seed, deterministic=config.deterministic)


# ------------------------------------------------------------------------------ run directory


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts/lists/tuples → {"a.b.0.c": leaf}. A config dataclass may hold a tuple
    (e.g. the stems) where its saved YAML holds a list: both flatten alike."""
    if isinstance(node, Mapping):
        items = node.items()
    elif isinstance(node, list | tuple):
        items = enumerate(node)
    else:
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat |= _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return flat or {prefix: node}


def config_changes(before: Any, after: Any) -> dict[str, tuple[Any, Any]]:
    """Settings that differ between two configs (dataclasses, DictConfigs or plain dicts), as
    {dotted key: (before, after)}; a key missing on one side shows as "<absent>"."""

    def plain(config: Any) -> dict[str, Any]:
        if dataclasses.is_dataclass(config):
            config = OmegaConf.structured(config)
        if OmegaConf.is_config(config):
            config = OmegaConf.to_container(config, resolve=True, enum_to_str=True)
        return _flatten(config)

    old, new = plain(before), plain(after)
    return {
        key: (old.get(key, "<absent>"), new.get(key, "<absent>"))
        for key in sorted(old.keys() | new.keys())
        if old.get(key, "<absent>") != new.get(key, "<absent>")
    }


def describe_changes(changes: Mapping[str, tuple[Any, Any]]) -> str:
    return "; ".join(f"{key}: {old!r} → {new!r}" for key, (old, new) in changes.items())


def _read_marker(run_dir: Path) -> dict[str, Any]:
    try:
        meta = json.loads((run_dir / RUN_MARKER).read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"{run_dir / RUN_MARKER} is unreadable ({error}); this folder cannot be resumed "
            "safely: choose another run_dir"
        ) from None
    if not isinstance(meta, dict) or "recipe" not in meta:
        raise ConfigError(f"{run_dir / RUN_MARKER} is not a wildsep run marker")
    return meta


def _archive_name(run_dir: Path) -> Path:
    """Where the previous config goes when a run is resumed with another one."""
    newest = latest_checkpoint(run_dir)
    stem = f"config.previous-{newest.name.removeprefix('ckpt-')}" if newest else "config.previous"
    candidate, n = run_dir / f"{stem}.yaml", 1
    while candidate.exists():
        n += 1
        candidate = run_dir / f"{stem}-{n}.yaml"
    return candidate


def _check_resume(run_dir: Path, config: Any) -> dict[str, tuple[Any, Any]]:
    """The changes between the run's saved config and `config`, when resuming is allowed."""
    train = config.train
    if not train.resume:
        raise ConfigError(
            f"{run_dir} already holds checkpoints of a run; choose another run_dir, or set "
            "train.resume=true to continue it"
        )
    saved = run_dir / CONFIG_FILE
    try:
        previous = OmegaConf.load(saved)
    except Exception as error:  # missing or unparsable: this run's own file, but unusable
        raise ConfigError(f"cannot read {saved} ({error}): choose another run_dir") from None
    changes = config_changes(previous, config)
    model = {k: v for k, v in changes.items() if k.split(".")[0] == "model"}
    if model:
        raise ConfigError(
            f"{run_dir} holds a run with a different model ({describe_changes(model)}); its "
            "checkpoints cannot be resumed with this config: choose another run_dir"
        )
    guarded = {
        k: v for k, v in changes.items() if not any(fnmatch.fnmatch(k, p) for p in FREE_TO_CHANGE)
    }
    if guarded and not train.allow_changes:
        raise ConfigError(
            f"resuming {run_dir} with changed settings ({describe_changes(guarded)}); set "
            "train.allow_changes=true to resume anyway (the previous config is kept), or "
            "choose another run_dir"
        )
    if guarded:
        log.warning("resuming %s with changed settings: %s", run_dir, describe_changes(guarded))
    return changes


def prepare_run_dir(run_dir: Path, config: Any, *, recipe: str, is_main: bool) -> None:
    """Make `run_dir` this run's directory, refusing anything that could lose a user's files.

    - A new or empty folder becomes a run directory: a marker file (`wildsep-run.json`:
      recipe, creation time, seed, wildsep version) and the config are written.
    - A folder without the marker that is not empty (a corpus, a home directory, another
      tool's output) is refused, untouched.
    - A run directory of another recipe is refused. One with checkpoints is resumed only with
      `train.resume`, the same `model` section, and — if data, optimiser or objective settings
      changed — `train.allow_changes`; the previous config is then kept beside the new one.

    Raises `ConfigError` (one line) when refusing. Only the main process writes.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run_dir {run_dir} is a file, not a folder: choose another run_dir")
    ours = (run_dir / RUN_MARKER).is_file()
    if run_dir.is_dir() and not ours and any(run_dir.iterdir()):
        raise ConfigError(
            f"run_dir {run_dir} is not empty and is not a wildsep run directory (no "
            f"{RUN_MARKER}); nothing was written to it: choose a new or empty folder"
        )
    changes: dict[str, tuple[Any, Any]] = {}
    if ours:
        meta = _read_marker(run_dir)
        if meta["recipe"] != recipe:
            raise ConfigError(
                f"{run_dir} holds a {meta['recipe']} run, not a {recipe} run: choose another "
                "run_dir"
            )
        if list_checkpoints(run_dir):
            changes = _check_resume(run_dir, config)
    if not is_main:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    if not ours:
        meta = {
            "recipe": recipe,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "seed": config.train.seed,
            "wildsep": metadata.version("wildsep"),
        }
        (run_dir / RUN_MARKER).write_text(json.dumps(meta, indent=1) + "\n")
    saved = run_dir / CONFIG_FILE
    if changes and saved.is_file():
        saved.rename(_archive_name(run_dir))
    save_config(config, saved)


# ------------------------------------------------------------------------------------ weights


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


# ---------------------------------------------------------------------------------- batches


def positioned_batches(loader: Any, sampler: Any) -> BatchSource:
    """Adapt a DataLoader over a resumable batch sampler (`len`, `load_state_dict({"epoch",
    "step"})`) to the engine's data source: batches from any position on, forever."""

    def source(position: int) -> Iterator[Batch]:
        per_epoch = len(sampler)
        sampler.load_state_dict({"epoch": position // per_epoch, "step": position % per_epoch})
        while True:
            yield from loader

    return source


def staged_batches(
    sources: Sequence[BatchSource], steps: Sequence[int], grad_accum: int
) -> BatchSource:
    """One data source for a curriculum whose stages read different data (MixIT reads
    mixtures of mixtures, Self-Remixing single mixtures): the micro-batches of stage i's
    steps come from `sources[i]`, each positioned at the global position, so the batch at
    any position is a pure function of it. The last stage's source runs on forever."""
    if len(sources) != len(steps) or not sources:
        raise ValueError("staged_batches needs one source per stage")
    ends, total = [], 0
    for count in steps[:-1]:
        total += count * grad_accum
        ends.append(total)
    ends.append(None)

    def stage_of(position: int) -> int:
        return next(i for i, end in enumerate(ends) if end is None or position < end)

    def source(position: int) -> Iterator[Batch]:
        stage = stage_of(position)
        current = sources[stage](position)
        while True:
            entered = stage_of(position)
            if entered != stage:
                if sources[entered] is not sources[stage]:  # the same source just goes on
                    current = sources[entered](position)
                stage = entered
            yield next(current)
            position += 1

    return source


def augmented_batches(source: BatchSource, data: Any, rank: int = 0) -> BatchSource:
    """`source` with the Demucs augmentations of `data.augment` (a `DataConfig`) applied to
    every batch; `source` itself when they are off.

    Each batch is augmented with a generator keyed on (data.seed, position, rank), so a
    resumed run augments exactly alike. Batches with "references" (stems, or the two
    mixtures of a MoM) are augmented source by source and the mixture recomputed as their
    sum; a batch of single mixtures (Self-Remixing) is augmented as one source per example.
    """
    if not data.augment.enabled:
        return source
    from wildsep.data import Augment

    augment = Augment.from_config(data.augment, data.clips.sample_rate)

    def positioned(position: int) -> Iterator[Batch]:
        for offset, batch in enumerate(source(position)):
            generator = keyed_generator(data.seed, position + offset, rank)
            if "references" in batch:
                yield augment(batch, generator)
                continue
            single = augment({"references": batch["mixture"].unsqueeze(1)}, generator)
            yield {**batch, "mixture": single["mixture"]}

    return positioned
