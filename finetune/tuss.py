"""Prompt-conditioned TUSS training, initialised from an unsupervised backbone.

    accelerate launch finetune/tuss.py [CONFIG] --init CKPT [key=value ...]

CKPT is a pre-training run directory or exported backbone (mapped into TUSS by
`TUSS.from_backbone`), or a TUSS to continue from; without `--init` TUSS trains from scratch.
Dynamic mixing from labeled pools, thresholded SNR with zero references and PIT among
identical prompts, prompt dropout, checkpoint averaging; the same engine as pre-training.
See docs/finetuning.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
from pathlib import Path

from finetune.config import FinetuneConfig, TUSSModelConfig
from losses import tuss_loss
from wildsep.config import ConfigError, load_config
from wildsep.data import EvalSetDataset, build_corpus_index, build_dynamic_mixing_loader
from wildsep.engine import (
    Stage,
    Trainer,
    augmented_batches,
    make_accelerator,
    positioned_batches,
    prepare_run_dir,
    run_recipe,
    seed_everything,
)
from wildsep.models import TUSS, Backbone, from_preset, load_pretrained
from wildsep.models.pretrained import read_config, resolve_model_dir
from wildsep.objectives import TUSSObjective, with_remix_batches
from wildsep.validation import PromptedValidation

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "tuss_medium.yaml"
log = logging.getLogger("finetune")


def build_model(config: TUSSModelConfig) -> tuple[TUSS, str]:
    """The TUSS to train and a description of where its weights came from."""
    prompts = {"prompts": tuple(config.prompts)} if config.prompts else {}
    if not config.init:
        return from_preset(config.preset, **config.overrides, **prompts), "random initialisation"
    directory = resolve_model_dir(config.init)
    kind, _ = read_config(directory)
    if kind is Backbone:
        decoder = int(config.decoder_init) if config.decoder_init.isdigit() else config.decoder_init
        model, table = TUSS.from_backbone(
            directory, decoder_init=decoder, **config.overrides, **prompts
        )
        return model, f"backbone {directory}\n{table}"
    if kind is TUSS:
        model = load_pretrained(directory)
        check_overrides(config.overrides, model.config, directory)
        new = [p for p in config.prompts or () if p not in model.config.prompts]
        if new:
            model.add_prompts(new)
        return model, f"TUSS {directory}" + (f" (new prompts {new})" if new else "")
    raise ConfigError(f"--init {config.init}: a {kind.__name__} cannot initialise TUSS")


def check_overrides(overrides: dict, found, directory) -> None:
    """A TUSS continued from `directory` keeps its config: `model.overrides` may only repeat
    it (the saved config.yaml would otherwise claim settings the model does not have)."""
    known = {f.name for f in dataclasses.fields(found)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"model.overrides: {unknown} are not TUSSConfig fields")
    differ = {k: (getattr(found, k), v) for k, v in overrides.items() if getattr(found, k) != v}
    if differ:
        fields = "; ".join(
            f"{k}: the model has {a!r}, overridden to {b!r}" for k, (a, b) in differ.items()
        )
        raise ConfigError(
            f"model.overrides contradict the TUSS being continued from {directory} ({fields}): "
            "drop them, or train a new model without --init"
        )


def load_validation(config: FinetuneConfig) -> list[dict]:
    v, rate = config.validation, config.data.clips.sample_rate
    if not v.manifest:
        return []
    examples = EvalSetDataset(v.manifest, rate)
    frames = int(v.seconds * rate) if v.seconds else None
    items = [examples[i] for i in range(min(v.max_examples, len(examples)))]
    return [
        {**item, "mixture": item["mixture"][:frames], "references": item["references"][:, :frames]}
        for item in items
    ]


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="YAML config")
    parser.add_argument("--init", help="pre-training run dir, exported backbone, or TUSS")
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    args, extra = parser.parse_known_args(argv)
    overrides = [*args.overrides, *extra]
    if args.config and "=" in args.config:  # no config file given, only overrides
        overrides, args.config = [args.config, *overrides], str(DEFAULT_CONFIG)
    if args.init:
        overrides.append(f"model.init={args.init}")
    config = load_config(FinetuneConfig, args.config, overrides)

    seed_everything(config.train)
    model, origin = build_model(config.model)
    if model.config.sample_rate != config.data.clips.sample_rate:
        raise ConfigError(
            f"data.clips.sample_rate={config.data.clips.sample_rate} but the model runs at "
            f"{model.config.sample_rate} Hz"
        )
    wanted = set(config.data.dynamic_mixing.prompts.classes)
    missing = sorted(wanted - set(model.config.prompts))
    if missing:
        raise ConfigError(
            f"dynamic mixing draws classes {missing} that the model has no prompt for; the "
            f"model's prompts: {list(model.config.prompts)} (set model.prompts)"
        )

    run_dir = Path(config.run_dir)
    accelerator = make_accelerator(config.train, run_dir, micro_batch=config.data.batch_size)
    prepare_run_dir(run_dir, config, recipe="finetune", is_main=accelerator.is_main_process)
    if accelerator.is_main_process:
        (run_dir / "init.txt").write_text(origin + "\n")
        log.info("initialised from %s", origin)
    with accelerator.main_process_first():
        pools = build_corpus_index(config.data.pools)
    rank, world_size = accelerator.process_index, accelerator.num_processes
    loader, sampler = build_dynamic_mixing_loader(
        config.data, rank=rank, world_size=world_size, pools=pools
    )
    # data.augment acts on the sources, before they are mixed
    batches = augmented_batches(positioned_batches(loader, sampler), config.data, rank)
    objective = TUSSObjective(config.objective)
    loss_fn = functools.partial(
        tuss_loss,
        snr_max=config.objective.snr_max,
        zero_ref_weight=config.objective.zero_ref_weight,
    )
    validate = None
    if accelerator.is_main_process and config.validation.manifest:
        validate = PromptedValidation(
            load_validation(config), loss_fn, config.validation.audio_examples
        )
    stages, batches = with_remix_batches(  # unchanged unless semisup.manifest is set
        config.semisup,
        config.data,
        [Stage("tuss", objective, config.train.max_steps)],
        batches,
        conditional=True,
        prompts=model.config.prompts,
        rank=rank,
        world_size=world_size,
        pools=pools,
    )
    trainer = Trainer(
        config.train,
        model,
        stages,
        batches,
        run_dir,
        accelerator,
        sample_rate=config.data.clips.sample_rate,
        validate=validate,
    )
    return trainer.fit()


if __name__ == "__main__":
    run_recipe(main)
