"""Pre-training of an unconditional separation backbone: unsupervised on unlabeled audio,
supervised on labeled pools (GASS), or both (semi-supervised MixIT).

    accelerate launch pretrain/run.py configs/mixit_yfcc.yaml [key=value ...]

Runs the config's curriculum (MixIT with sparsity/covariance, then optionally Self-Remixing;
or supervised PIT on dynamic mixtures of labeled sources, alone or interleaved with MixIT)
on one CPU, one or many GPUs, DDP or DeepSpeed; resumes from the newest checkpoint in
`run_dir`; exports the backbone to `run_dir/model`, which `finetune/tuss.py --init` accepts.
See docs/pretraining.md.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import shutil
from pathlib import Path

from losses import tuss_loss
from pretrain.config import (
    ObjectiveKind,
    PretrainConfig,
    StageConfig,
    check_stages,
    reads_pools,
)
from wildsep.config import ConfigError, load_config
from wildsep.data import (
    EvalSetDataset,
    build_corpus_index,
    build_dynamic_mixing_loader,
    build_mixit_loader,
    build_mixture_loader,
    build_stems_loader,
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
from wildsep.objectives import (
    MixITObjective,
    RemixingObjective,
    SemiSupervisedMixIT,
    SemiSupMode,
    StemsObjective,
    SupervisedObjective,
    semisup_mixit_batches,
    with_remix_batches,
)
from wildsep.validation import UnconditionalValidation


def keep_skip_report(index, run_dir: Path, is_main: bool, name: str = "skipped_files.csv") -> None:
    """Copy the index's list of unusable files (path, reason) into the run directory."""
    report = Path(index.report_path)
    if is_main and report.is_file():
        shutil.copyfile(report, run_dir / name)


def build_objective(stage: StageConfig, model) -> Objective:
    if stage.objective == ObjectiveKind.mixit:
        return MixITObjective(stage.mixit)
    if stage.objective == ObjectiveKind.supervised:
        return SupervisedObjective(stage.supervised)
    if stage.objective == ObjectiveKind.semisup_mixit:
        return SemiSupervisedMixIT(stage.semisup_mixit, stage.mixit, stage.supervised)
    if stage.objective == ObjectiveKind.stems:
        return StemsObjective(stage.stems)
    return RemixingObjective(stage.remixing, model)


def mom_batches(data, index, pools, rank: int, world_size: int) -> BatchSource:
    """Mixtures of two mixtures of the unlabeled corpus (MixIT)."""
    loader, sampler = build_mixit_loader(data, rank=rank, world_size=world_size, index=index)
    return positioned_batches(loader, sampler)


def single_mixture_batches(data, index, pools, rank: int, world_size: int) -> BatchSource:
    """Single in-the-wild mixtures of the unlabeled corpus (Self-Remixing, RemixIT)."""
    loader, sampler = build_mixture_loader(data, rank=rank, world_size=world_size, index=index)
    return positioned_batches(loader, sampler)


def labeled_batches(data, index, pools, rank: int, world_size: int) -> BatchSource:
    """Dynamic mixtures of N labeled sources (N from data.dynamic_mixing.num_sources, fixed
    within a batch) with their references: the supervised objective's data. The pool classes
    steer the mixing (prompt chain, gains); the objective never sees them."""
    loader, sampler = build_dynamic_mixing_loader(
        data, rank=rank, world_size=world_size, pools=pools
    )
    return positioned_batches(loader, sampler)


def stems_batches(stems: tuple[str, ...]):
    """Mixtures of the S `stems` with their references in that order, from a folder of
    tracks (data.stems.source) or the labeled pools, each stem class once (fixed-stem stage)."""

    def read(data, index, pools, rank: int, world_size: int) -> BatchSource:
        loader, sampler = build_stems_loader(
            data, stems, rank=rank, world_size=world_size, pools=pools
        )
        return positioned_batches(loader, sampler)

    return read


# What each stage's objective separates: MixIT a mixture of two mixtures, Self-Remixing and
# RemixIT single in-the-wild mixtures (reference §4), the supervised objective dynamic
# mixtures of labeled sources; semi-supervised MixIT reads both MoMs and labeled mixtures.
STAGE_LOADERS = {
    ObjectiveKind.mixit: (mom_batches,),
    ObjectiveKind.remixing: (single_mixture_batches,),
    ObjectiveKind.supervised: (labeled_batches,),
    ObjectiveKind.semisup_mixit: (mom_batches, labeled_batches),
}


def training_batches(
    config: PretrainConfig, index, rank: int, world_size: int, pools=None
) -> BatchSource:
    """The curriculum's data: each stage reads what its objective needs, augmented
    (`data.augment`) on the clips before they are mixed. `index` is the unlabeled corpus's
    (None when no stage reads it), `pools` the labeled pools' (None likewise)."""
    data = config.data
    sources: dict = {}  # each kind of data is read by one loader, shared by the stages

    def read(kind, key=None) -> BatchSource:
        key = key or kind
        if key not in sources:
            sources[key] = kind(data, index, pools, rank, world_size)
        return sources[key]

    def stage_source(stage: StageConfig) -> BatchSource:
        if stage.objective == ObjectiveKind.stems:  # the stems' order is the stage's
            return read(stems_batches(stage.stems.stems), key=stage.stems.stems)
        if stage.objective != ObjectiveKind.semisup_mixit:
            return read(STAGE_LOADERS[stage.objective][0])
        mom, labeled = (read(kind) for kind in STAGE_LOADERS[stage.objective])
        if stage.semisup_mixit.mode == SemiSupMode.sum:
            # the engine augments the batch's MoM half; the labeled half draws its own
            # augmentations here, keyed on another seed so the two halves are independent
            labeled = augmented_batches(
                labeled, dataclasses.replace(data, seed=data.seed + 1), rank
            )
        return semisup_mixit_batches(mom, labeled, stage.semisup_mixit)

    batches = staged_batches(
        [stage_source(stage) for stage in config.stages],
        [stage.steps for stage in config.stages],
        config.train.grad_accum,
    )
    return augmented_batches(batches, data, rank)


def stems_settings(config: PretrainConfig):
    """The stems and loss of the first stems stage (None when the run has none): what the
    held-out stems batches are scored with."""
    return next((s.stems for s in config.stages if s.objective == ObjectiveKind.stems), None)


def output_names(config: PretrainConfig, model) -> list[str]:
    """What the model's outputs are: its own `sources` (a Demucs), else the stems of the
    first stems stage, else nothing (anonymous outputs)."""
    names = list(getattr(model.config, "sources", ()) or ())
    stems = stems_settings(config)
    return names or (list(stems.stems) if stems is not None else [])


def supervised_settings(config: PretrainConfig):
    """The supervised loss settings of the first stage that has one (defaults otherwise): what
    validation scores labeled examples with."""
    for stage in config.stages:
        if stage.objective.reads_pools:
            return stage.supervised
    return StageConfig().supervised


def build_validation(config: PretrainConfig, index, pools=None) -> UnconditionalValidation:
    """Held-out MoMs (from `validation.corpus`, else the training corpus; none when the run
    reads no unlabeled corpus), held-out dynamic mixtures (from `validation.pools`, else the
    training pools, when a stage reads pools), held-out stems (from `validation.stems`, else
    the training stems, when a stage trains fixed stems) and the labeled examples of the
    manifests."""
    v, data = config.validation, copy.deepcopy(config.data)
    data.seed, data.num_workers = v.seed, 0
    data.mixit.silent_prob = 0.0  # MoMi is defined on two real mixtures
    if v.corpus:
        data.corpus.source = v.corpus
        index = None
    kinds = {stage.objective for stage in config.stages}
    mom_batches, mixing_batches = [], []
    if any(kind.reads_corpus for kind in kinds) or v.corpus:
        loader, _ = build_mixit_loader(data, index=index)
        mom_batches = [batch for batch, _ in zip(loader, range(v.mom_batches), strict=False)]
    if any(kind.reads_pools for kind in kinds):
        if v.pools:
            data.pools.source, pools = v.pools, None
        loader, _ = build_dynamic_mixing_loader(data, pools=pools)
        mixing_batches = [batch for batch, _ in zip(loader, range(v.mom_batches), strict=False)]
    stems, stem_batches = stems_settings(config), []
    if stems is not None:
        if v.stems:
            data.stems.source = v.stems
        elif v.pools and not data.stems.source:
            data.pools.source, pools = v.pools, None
        loader, _ = build_stems_loader(data, stems.stems, pools=pools)
        stem_batches = [batch for batch, _ in zip(loader, range(v.mom_batches), strict=False)]
    labeled = []
    for manifest in filter(None, (v.manifest, v.single_manifest)):
        examples = EvalSetDataset(manifest, data.clips.sample_rate)
        for i in range(min(v.max_examples, len(examples))):
            item = examples[i]
            if v.seconds:
                frames = int(v.seconds * data.clips.sample_rate)
                item = {**item, **{k: item[k][..., :frames] for k in ("mixture", "references")}}
            labeled.append(item)
    settings = supervised_settings(config)
    loss_fn = functools.partial(
        tuss_loss, snr_max=settings.snr_max, zero_ref_weight=settings.zero_ref_weight
    )
    return UnconditionalValidation(
        mom_batches,
        labeled,
        v.audio_examples,
        mixing_batches=mixing_batches,
        loss_fn=loss_fn,
        stem_batches=stem_batches,
        stems=stems,
        sample_rate=config.data.clips.sample_rate,
    )


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
    kinds = {stage.objective for stage in config.stages}
    index = pools = None
    with accelerator.main_process_first():  # index once; the other processes read the cache
        if any(kind.reads_corpus for kind in kinds):
            index = build_corpus_index(config.data.corpus)
        if reads_pools(config) or config.semisup.enabled:
            pools = build_corpus_index(config.data.pools)
    if index is not None:
        keep_skip_report(index, run_dir, accelerator.is_main_process)
    if pools is not None:
        keep_skip_report(pools, run_dir, accelerator.is_main_process, "skipped_pool_files.csv")
    rank, world_size = accelerator.process_index, accelerator.num_processes
    stages = [Stage(s.name, build_objective(s, model), s.steps) for s in config.stages]
    stages, batches = with_remix_batches(  # unchanged unless semisup.manifest is set
        config.semisup,
        config.data,
        stages,
        training_batches(config, index, rank, world_size, pools),
        conditional=False,
        rank=rank,
        world_size=world_size,
        pools=pools,
        outputs=output_names(config, model),
    )
    validate = build_validation(config, index, pools) if accelerator.is_main_process else None
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
