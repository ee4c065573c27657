"""Train the source-presence classifier that finds where a class is absent in unlabeled audio.

    accelerate launch pretrain/presence.py configs/demo_presence.yaml [key=value ...]

Dynamic mixtures of the labeled pools (`data.pools`, `data.dynamic_mixing`), each reference
sounding over the whole clip or only a random span; per-window, per-class presence targets from
each reference's energy (`objective.threshold_db` relative to `objective.reference`); BCE.
The same engine as the other recipes (checkpoints, resume, DDP). Exports the classifier to
`run_dir/model`, which `pretrain/mine.py` (same config) uses. See docs/pretraining.md.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from wildsep.config import ConfigError, load_config
from wildsep.data import (
    CorpusConfig,
    DataConfig,
    MiningConfig,
    build_corpus_index,
    build_dynamic_mixing_loader,
)
from wildsep.engine import (
    Stage,
    TrainConfig,
    Trainer,
    augmented_batches,
    make_accelerator,
    positioned_batches,
    prepare_run_dir,
    run_recipe,
    seed_everything,
)
from wildsep.models import PresenceClassifier, PresenceConfig
from wildsep.objectives import PresenceObjective, PresenceObjectiveConfig


@dataclass
class PresenceValidationConfig:
    batches: int = 4  # held-out dynamic-mixing batches, drawn with `seed`
    seed: int = 1_000_003
    confidence: float = 0.9  # also report how often "absent at this confidence" is right


@dataclass
class MineSection(MiningConfig):
    """`pretrain/mine.py`: where to look, where to write; the rest is `MiningConfig`."""

    corpus: CorpusConfig = field(default_factory=CorpusConfig)  # the unlabeled corpus
    streaming: bool = False  # stream the corpus instead of indexing it (very large corpora)
    output: str | None = None  # manifest; default run_dir/mined.jsonl
    model: str | None = None  # exported classifier; default run_dir/model
    device: str = "cpu"


@dataclass
class PresenceRecipeConfig:
    run_dir: str = "runs/presence"
    model: PresenceConfig = field(default_factory=PresenceConfig)
    data: DataConfig = field(default_factory=DataConfig)  # data.pools: labeled pools
    train: TrainConfig = field(default_factory=TrainConfig)
    objective: PresenceObjectiveConfig = field(default_factory=PresenceObjectiveConfig)
    validation: PresenceValidationConfig = field(default_factory=PresenceValidationConfig)
    mining: MineSection = field(default_factory=MineSection)


class PresenceValidation:
    """BCE, window accuracy, and the precision/recall of "absent" decisions at the mining
    confidence (P(present) ≤ 1 − confidence) on fixed held-out batches."""

    def __init__(self, batches: list[dict], objective: PresenceObjective, confidence: float):
        # Gate once, with fixed steps, so every validation sees the same mixtures.
        self.items = [objective.prepare(batch, -1 - i) for i, batch in enumerate(batches)]
        self.confidence = confidence

    @torch.no_grad()
    def __call__(self, model: nn.Module, step: int) -> dict[str, float]:
        device = next(model.parameters()).device
        losses, right, total = [], 0.0, 0
        said_absent = true_absent = both = 0.0
        for mixture, targets in self.items:
            logits = model(mixture.to(device)).float()
            targets = targets.to(device)
            losses.append(F.binary_cross_entropy_with_logits(logits, targets).item())
            right += ((logits > 0).float() == targets).sum().item()
            total += targets.numel()
            absent = torch.sigmoid(logits) <= 1 - self.confidence
            said_absent += absent.sum().item()
            true_absent += (targets == 0).sum().item()
            both += (absent & (targets == 0)).sum().item()
        return {
            "loss": sum(losses) / len(losses),
            "accuracy": right / total,
            "absent_precision": both / max(1.0, said_absent),
            "absent_recall": both / max(1.0, true_absent),
        }


def check_config(config: PresenceRecipeConfig) -> None:
    model, clips = config.model, config.data.clips
    if clips.sample_rate != model.sample_rate:
        raise ConfigError(
            f"data.clips.sample_rate={clips.sample_rate} but model.sample_rate="
            f"{model.sample_rate}: the classifier is trained at its own rate"
        )
    if clips.num_frames < model.window:
        raise ConfigError(
            f"data.clips.duration is shorter than one window ({model.window_seconds} s)"
        )
    drawable = set(config.data.dynamic_mixing.prompts.classes)
    missing = sorted(set(model.classes) - drawable)
    if missing:
        raise ConfigError(
            f"model.classes {missing} are never drawn by data.dynamic_mixing.prompts "
            f"({sorted(drawable)}): the classifier would never see them present"
        )


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="YAML config, e.g. configs/demo_presence.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    args = parser.parse_args(argv)
    config = load_config(PresenceRecipeConfig, args.config, args.overrides)
    check_config(config)

    seed_everything(config.train)
    model = PresenceClassifier(config.model)
    run_dir = Path(config.run_dir)
    accelerator = make_accelerator(config.train, run_dir, micro_batch=config.data.batch_size)
    prepare_run_dir(run_dir, config, recipe="presence", is_main=accelerator.is_main_process)
    with accelerator.main_process_first():
        pools = build_corpus_index(config.data.pools)
    rank, world_size = accelerator.process_index, accelerator.num_processes
    loader, sampler = build_dynamic_mixing_loader(
        config.data, rank=rank, world_size=world_size, pools=pools
    )
    objective = PresenceObjective(config.objective, config.model)
    validate = None
    if accelerator.is_main_process and config.validation.batches > 0:
        held_out = copy.deepcopy(config.data)
        held_out.seed, held_out.num_workers = config.validation.seed, 0
        val_loader, _ = build_dynamic_mixing_loader(held_out, pools=pools)
        batches = [b for b, _ in zip(val_loader, range(config.validation.batches), strict=False)]
        validate = PresenceValidation(batches, objective, config.validation.confidence)
    trainer = Trainer(
        config.train,
        model,
        [Stage("presence", objective, config.train.max_steps)],
        augmented_batches(positioned_batches(loader, sampler), config.data, rank),
        run_dir,
        accelerator,
        sample_rate=config.data.clips.sample_rate,
        validate=validate,
    )
    return trainer.fit()


if __name__ == "__main__":
    run_recipe(main)
