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


def keyed_loader(
    dataset: Dataset, sampler: Sampler, collate, num_workers: int, seed: int = 0
) -> DataLoader:
    """A DataLoader over a batch sampler of keys (every item a pure function of its key)."""
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
        # Every new iterator draws a worker base seed; from its own generator it leaves the
        # global torch RNG (model init, dropout) alone, so resumed runs stay in step.
        generator=torch.Generator().manual_seed(seed),
    )


def _check_one_batch(items: int, what: str, config: DataConfig, world_size: int) -> None:
    """A clear error, naming the keys to change, when `items` cannot fill one global batch."""
    if config.drop_last and items < config.batch_size * world_size:
        per_rank = max(1, items // world_size)
        raise ValueError(
            f"the corpus gives {items} {what}, fewer than one batch of {config.batch_size} on "
            f"each of {world_size} process(es): set data.batch_size={per_rank} (or less), or "
            "data.drop_last=false to fill batches by wrapping around the corpus"
        )


def _clip_loader(
    dataset: Dataset, collate, what: str, config: DataConfig, rank: int, world_size: int, state
) -> tuple[DataLoader, ResumableBatchSampler]:
    """A resumable, rank-aware loader over a keyed dataset of corpus clips."""
    _check_one_batch(len(dataset), what, config, world_size)  # type: ignore[arg-type]
    sampler = ResumableBatchSampler(
        len(dataset),  # type: ignore[arg-type]
        config.batch_size,
        rank=rank,
        world_size=world_size,
        drop_last=config.drop_last,
    )
    if state:
        sampler.load_state_dict(state)
    return keyed_loader(dataset, sampler, collate, config.num_workers, config.seed), sampler


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
    what = "mixtures of mixtures (pairs of files)"
    return _clip_loader(dataset, collate_mixture_of_mixtures, what, config, rank, world_size, state)


def collate_mixtures(items: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Single clips ([C,] T) as a batch of mixtures: ``{"mixture": (B, [C,] T)}``."""
    return {"mixture": torch.stack(items)}


def build_mixture_loader(
    config: DataConfig,
    *,
    rank: int = 0,
    world_size: int = 1,
    index: CorpusIndex | None = None,
    state: dict[str, int] | None = None,
) -> tuple[DataLoader, ResumableBatchSampler]:
    """Batches ``{"mixture": (B, [C,] T)}`` of single in-the-wild clips from
    ``config.corpus``: what Self-Remixing and RemixIT separate (reference §4)."""
    index = index or build_corpus_index(config.corpus)
    dataset = ClipDataset(index, config.clips, seed=config.seed)
    return _clip_loader(dataset, collate_mixtures, "files", config, rank, world_size, state)


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
    _check_one_batch(len(dataset), "dynamic mixtures per epoch", config, world_size)
    sampler = FixedNumSourcesBatchSampler(
        len(dataset),
        config.batch_size,
        mixing.num_sources,
        mixing.source_count_weights(),
        seed=config.seed,
        rank=rank,
        world_size=world_size,
        drop_last=config.drop_last,
    )
    if state:
        sampler.load_state_dict(state)
    collate = collate_dynamic_mixing
    return keyed_loader(dataset, sampler, collate, config.num_workers, config.seed), sampler


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
