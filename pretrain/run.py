"""Unsupervised pre-training of an unconditional separation backbone on unlabeled audio.

    accelerate launch pretrain/run.py configs/mixit_yfcc.yaml [key=value ...]

Runs the config's curriculum (MixIT with sparsity/covariance, then optionally Self-Remixing)
on one CPU, one or many GPUs, DDP or DeepSpeed; resumes from the newest checkpoint in
`run_dir`; exports the backbone to `run_dir/model`, which `finetune/tuss.py --init` accepts.
See docs/pretraining.md.
"""

from __future__ import annotations

import argparse
import copy
import shutil
from pathlib import Path

from pretrain.config import ObjectiveKind, PretrainConfig, StageConfig, check_stages
from wildsep.config import ConfigError, load_config
from wildsep.data import (
    EvalSetDataset,
    build_corpus_index,
    build_mixit_loader,
    build_mixture_loader,
)
from wildsep.engine import (
    Objective,
    Stage,
    Trainer,
    augmented_batches,
    initialise_from,
    make_accelerator,
    positioned_batches,
    prepare_run_dir,
    run_recipe,
    seed_everything,
    staged_batches,
)
from wildsep.engine.trainer import BatchSource
from wildsep.models import from_preset
from wildsep.objectives import MixITObjective, RemixingObjective, with_remix_batches
from wildsep.validation import UnconditionalValidation


def keep_skip_report(index, run_dir: Path, is_main: bool) -> None:
    """Copy the index's list of unusable files (path, reason) into the run directory."""
    report = Path(index.report_path)
    if is_main and report.is_file():
        shutil.copyfile(report, run_dir / "skipped_files.csv")


def build_objective(stage: StageConfig, model) -> Objective:
    if stage.objective == ObjectiveKind.mixit:
        return MixITObjective(stage.mixit)
    return RemixingObjective(stage.remixing, model)


# What each stage's objective separates: MixIT a mixture of two mixtures, Self-Remixing and
# RemixIT single in-the-wild mixtures (reference §4).
STAGE_LOADERS = {
    ObjectiveKind.mixit: build_mixit_loader,
    ObjectiveKind.remixing: build_mixture_loader,
}


def training_batches(config: PretrainConfig, index, rank: int, world_size: int) -> BatchSource:
    """The curriculum's data: each stage reads what its objective needs, augmented
    (`data.augment`) on the clips before they are mixed."""
    sources = {}
    for kind in {stage.objective for stage in config.stages}:
        loader, sampler = STAGE_LOADERS[kind](
            config.data, rank=rank, world_size=world_size, index=index
        )
        sources[kind] = positioned_batches(loader, sampler)
    batches = staged_batches(
        [sources[stage.objective] for stage in config.stages],
        [stage.steps for stage in config.stages],
        config.train.grad_accum,
    )
    return augmented_batches(batches, config.data, rank)


def build_validation(config: PretrainConfig, index) -> UnconditionalValidation:
    v, data = config.validation, copy.deepcopy(config.data)
    data.seed, data.num_workers = v.seed, 0
    data.mixit.silent_prob = 0.0  # MoMi is defined on two real mixtures
    if v.corpus:
        data.corpus.source = v.corpus
        index = None
    loader, _ = build_mixit_loader(data, index=index)
    mom_batches = [batch for batch, _ in zip(loader, range(v.mom_batches), strict=False)]
    labeled = []
    for manifest in filter(None, (v.manifest, v.single_manifest)):
        examples = EvalSetDataset(manifest, data.clips.sample_rate)
        for i in range(min(v.max_examples, len(examples))):
            item = examples[i]
            if v.seconds:
                frames = int(v.seconds * data.clips.sample_rate)
                item = {k: item[k][..., :frames] for k in ("mixture", "references")}
            labeled.append(item)
    return UnconditionalValidation(mom_batches, labeled, v.audio_examples)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="YAML config, e.g. configs/mixit_yfcc.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.max_steps=10")
    args = parser.parse_args(argv)
    config = load_config(PretrainConfig, args.config, args.overrides)
    check_stages(config)

    seed_everything(config.train)
    model = from_preset(config.model.preset, **config.model.overrides)
    if model.config.sample_rate != config.data.clips.sample_rate:
        raise ConfigError(
            f"data.clips.sample_rate={config.data.clips.sample_rate} but the model runs at "
            f"{model.config.sample_rate} Hz: set model.overrides.sample_rate or the data rate"
        )
    if config.model.init:
        initialise_from(model, config.model.init)

    run_dir = Path(config.run_dir)
    accelerator = make_accelerator(config.train, run_dir, micro_batch=config.data.batch_size)
    prepare_run_dir(run_dir, config, recipe="pretrain", is_main=accelerator.is_main_process)
    with accelerator.main_process_first():  # index once; the other processes read the cache
        index = build_corpus_index(config.data.corpus)
    keep_skip_report(index, run_dir, accelerator.is_main_process)
    rank, world_size = accelerator.process_index, accelerator.num_processes
    stages = [Stage(s.name, build_objective(s, model), s.steps) for s in config.stages]
    stages, batches = with_remix_batches(  # unchanged unless semisup.manifest is set
        config.semisup,
        config.data,
        stages,
        training_batches(config, index, rank, world_size),
        conditional=False,
        rank=rank,
        world_size=world_size,
    )
    validate = build_validation(config, index) if accelerator.is_main_process else None
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
