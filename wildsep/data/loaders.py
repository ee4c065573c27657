"""Ready-made training/evaluation loaders: the small surface a training engine needs.

Each builder returns the ``DataLoader`` and its batch sampler; the engine saves
``{"epoch": e, "step": batches consumed in e}`` and passes it back as `state` to resume.
"""

from __future__ import annotations

import os
import signal

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from wildsep.data.clips import ClipDataset
from wildsep.data.config import DataConfig
from wildsep.data.evalset import EvalSetDataset, collate_eval
from wildsep.data.index import CorpusIndex, build_corpus_index
from wildsep.data.mixing import DynamicMixingDataset, collate_dynamic_mixing
from wildsep.data.mixit import MixtureOfMixturesDataset, collate_mixture_of_mixtures
from wildsep.data.sampler import FixedNumSourcesBatchSampler, ResumableBatchSampler


def leave_stop_signals_to_the_main_process(worker_id: int) -> None:
    """Worker init: ignore SIGTERM/SIGINT. Schedulers signal the whole process group on
    preemption; a worker dying first would crash the main process before it can checkpoint.
    (PyTorch's worker watchdog still ends workers whose parent has exited.)"""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _loader(dataset: Dataset, sampler: Sampler, collate, num_workers: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        # Items are keyed, not drawn from worker RNG state, so persistent workers are safe and
        # spare the start-up cost every epoch.
        persistent_workers=num_workers > 0,
        worker_init_fn=leave_stop_signals_to_the_main_process,
        pin_memory=torch.cuda.is_available(),
    )


def build_mixit_loader(
    config: DataConfig,
    *,
    rank: int = 0,
    world_size: int = 1,
    index: CorpusIndex | None = None,
    state: dict[str, int] | None = None,
) -> tuple[DataLoader, ResumableBatchSampler]:
    """Batches ``{"mixture": (B, [C,] T), "references": (B, 2, [C,] T)}`` of mixtures of
    mixtures from ``config.corpus`` (indexed here unless `index` is given)."""
    index = index or build_corpus_index(config.corpus)
    clips = ClipDataset(index, config.clips, seed=config.seed)
    dataset = MixtureOfMixturesDataset(clips, config.mixit)
    sampler = ResumableBatchSampler(
        len(dataset), config.batch_size, rank=rank, world_size=world_size
    )
    if state:
        sampler.load_state_dict(state)
    return _loader(dataset, sampler, collate_mixture_of_mixtures, config.num_workers), sampler


def build_dynamic_mixing_loader(
    config: DataConfig,
    *,
    rank: int = 0,
    world_size: int = 1,
    pools: CorpusIndex | None = None,
    state: dict[str, int] | None = None,
) -> tuple[DataLoader, FixedNumSourcesBatchSampler]:
    """Batches ``{"mixture": (B, [C,] T), "references": (B, N, [C,] T), "prompts":
    list[list[str]]}`` with N fixed within a batch, from the labeled ``config.pools``."""
    pools = pools or build_corpus_index(config.pools)
    mixing = config.dynamic_mixing
    dataset = DynamicMixingDataset(pools, mixing, config.clips, seed=config.seed)
    sampler = FixedNumSourcesBatchSampler(
        len(dataset),
        config.batch_size,
        mixing.num_sources,
        mixing.source_count_weights(),
        seed=config.seed,
        rank=rank,
        world_size=world_size,
    )
    if state:
        sampler.load_state_dict(state)
    return _loader(dataset, sampler, collate_dynamic_mixing, config.num_workers), sampler


def build_eval_loader(
    manifest: str | os.PathLike,
    sample_rate: int,
    *,
    channels: str = "mono",
    batch_size: int = 1,
    num_workers: int = 0,
) -> DataLoader:
    """Batches of a fixed evaluation set in manifest order (see :func:`collate_eval`)."""
    dataset = EvalSetDataset(manifest, sample_rate, channels=channels)
    return DataLoader(
        dataset, batch_size=batch_size, collate_fn=collate_eval, num_workers=num_workers
    )
