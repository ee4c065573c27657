"""Audio data pipeline: corpus indexing and streaming, tar shards, clip sampling, mixtures of
mixtures, prompt-conditioned dynamic mixing, Demucs augmentations and evaluation sets.

See docs/data.md. The demo corpus lives in :mod:`wildsep.data.demo`.

Names are imported lazily (PEP 562) so that ``python -m wildsep.data.demo`` and other light
users do not pay for importing torch and datasets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AudioInfo": "wildsep.data.audio_io",
    "Augment": "wildsep.data.augment",
    "AugmentConfig": "wildsep.data.config",
    "BackgroundConfig": "wildsep.data.config",
    "ClipConfig": "wildsep.data.config",
    "ClipDataset": "wildsep.data.clips",
    "ClipSampler": "wildsep.data.clips",
    "CorpusConfig": "wildsep.data.config",
    "CorpusIndex": "wildsep.data.index",
    "DataConfig": "wildsep.data.config",
    "DynamicMixingConfig": "wildsep.data.config",
    "DynamicMixingDataset": "wildsep.data.mixing",
    "EvalSetDataset": "wildsep.data.evalset",
    "FileCheck": "wildsep.data.audio_io",
    "FixedNumSourcesBatchSampler": "wildsep.data.sampler",
    "FlipChannels": "wildsep.data.augment",
    "FlipSign": "wildsep.data.augment",
    "MarkovPromptSampler": "wildsep.data.prompts",
    "MiningConfig": "wildsep.data.mining",
    "MiningReport": "wildsep.data.mining",
    "MixITConfig": "wildsep.data.config",
    "MixtureOfMixturesDataset": "wildsep.data.mixit",
    "PromptConfig": "wildsep.data.config",
    "Remix": "wildsep.data.augment",
    "RemixDataset": "wildsep.data.mining",
    "ResumableBatchSampler": "wildsep.data.sampler",
    "Scale": "wildsep.data.augment",
    "Segment": "wildsep.data.mining",
    "ShardClipDataset": "wildsep.data.shards",
    "ShardLoader": "wildsep.data.shards",
    "Shift": "wildsep.data.augment",
    "StemsFolderConfig": "wildsep.data.config",
    "StemsFolderDataset": "wildsep.data.stems",
    "StreamingClipDataset": "wildsep.data.streaming",
    "build_corpus_index": "wildsep.data.index",
    "build_dynamic_mixing_loader": "wildsep.data.loaders",
    "build_eval_loader": "wildsep.data.loaders",
    "build_mixit_loader": "wildsep.data.loaders",
    "build_mixture_loader": "wildsep.data.loaders",
    "build_remix_loader": "wildsep.data.mining",
    "build_stems_loader": "wildsep.data.stems",
    "check_audio_file": "wildsep.data.audio_io",
    "collate_clips": "wildsep.data.clips",
    "collate_dynamic_mixing": "wildsep.data.mixing",
    "collate_eval": "wildsep.data.evalset",
    "collate_mixture_of_mixtures": "wildsep.data.mixit",
    "collate_mixtures": "wildsep.data.loaders",
    "collate_remix": "wildsep.data.mining",
    "collate_stems": "wildsep.data.stems",
    "load_audio": "wildsep.data.audio_io",
    "load_data_config": "wildsep.data.config",
    "iter_shard": "wildsep.data.shards",
    "list_shards": "wildsep.data.shards",
    "load_span": "wildsep.data.audio_io",
    "mine_corpus": "wildsep.data.mining",
    "pair_clips": "wildsep.data.mixit",
    "probe": "wildsep.data.audio_io",
    "read_mined": "wildsep.data.mining",
    "resample": "wildsep.data.audio_io",
    "score_mining": "wildsep.data.mining",
    "stream_corpus": "wildsep.data.streaming",
    "write_shards": "wildsep.data.shards",
    "write_truth_corpus": "wildsep.data.mining",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # what static tools see; at run time __getattr__ imports on first use
    from wildsep.data.audio_io import AudioInfo as AudioInfo
    from wildsep.data.audio_io import FileCheck as FileCheck
    from wildsep.data.audio_io import check_audio_file as check_audio_file
    from wildsep.data.audio_io import load_audio as load_audio
    from wildsep.data.audio_io import load_span as load_span
    from wildsep.data.audio_io import probe as probe
    from wildsep.data.audio_io import resample as resample
    from wildsep.data.augment import Augment as Augment
    from wildsep.data.augment import FlipChannels as FlipChannels
    from wildsep.data.augment import FlipSign as FlipSign
    from wildsep.data.augment import Remix as Remix
    from wildsep.data.augment import Scale as Scale
    from wildsep.data.augment import Shift as Shift
    from wildsep.data.clips import ClipDataset as ClipDataset
    from wildsep.data.clips import ClipSampler as ClipSampler
    from wildsep.data.clips import collate_clips as collate_clips
    from wildsep.data.config import AugmentConfig as AugmentConfig
    from wildsep.data.config import BackgroundConfig as BackgroundConfig
    from wildsep.data.config import ClipConfig as ClipConfig
    from wildsep.data.config import CorpusConfig as CorpusConfig
    from wildsep.data.config import DataConfig as DataConfig
    from wildsep.data.config import DynamicMixingConfig as DynamicMixingConfig
    from wildsep.data.config import MixITConfig as MixITConfig
    from wildsep.data.config import PromptConfig as PromptConfig
    from wildsep.data.config import StemsFolderConfig as StemsFolderConfig
    from wildsep.data.config import load_data_config as load_data_config
    from wildsep.data.evalset import EvalSetDataset as EvalSetDataset
    from wildsep.data.evalset import collate_eval as collate_eval
    from wildsep.data.index import CorpusIndex as CorpusIndex
    from wildsep.data.index import build_corpus_index as build_corpus_index
    from wildsep.data.loaders import build_dynamic_mixing_loader as build_dynamic_mixing_loader
    from wildsep.data.loaders import build_eval_loader as build_eval_loader
    from wildsep.data.loaders import build_mixit_loader as build_mixit_loader
    from wildsep.data.loaders import build_mixture_loader as build_mixture_loader
    from wildsep.data.loaders import collate_mixtures as collate_mixtures
    from wildsep.data.mining import MiningConfig as MiningConfig
    from wildsep.data.mining import MiningReport as MiningReport
    from wildsep.data.mining import RemixDataset as RemixDataset
    from wildsep.data.mining import Segment as Segment
    from wildsep.data.mining import build_remix_loader as build_remix_loader
    from wildsep.data.mining import collate_remix as collate_remix
    from wildsep.data.mining import mine_corpus as mine_corpus
    from wildsep.data.mining import read_mined as read_mined
    from wildsep.data.mining import score_mining as score_mining
    from wildsep.data.mining import write_truth_corpus as write_truth_corpus
    from wildsep.data.mixing import DynamicMixingDataset as DynamicMixingDataset
    from wildsep.data.mixing import collate_dynamic_mixing as collate_dynamic_mixing
    from wildsep.data.mixit import MixtureOfMixturesDataset as MixtureOfMixturesDataset
    from wildsep.data.mixit import collate_mixture_of_mixtures as collate_mixture_of_mixtures
    from wildsep.data.mixit import pair_clips as pair_clips
    from wildsep.data.prompts import MarkovPromptSampler as MarkovPromptSampler
    from wildsep.data.sampler import FixedNumSourcesBatchSampler as FixedNumSourcesBatchSampler
    from wildsep.data.sampler import ResumableBatchSampler as ResumableBatchSampler
    from wildsep.data.shards import ShardClipDataset as ShardClipDataset
    from wildsep.data.shards import ShardLoader as ShardLoader
    from wildsep.data.shards import iter_shard as iter_shard
    from wildsep.data.shards import list_shards as list_shards
    from wildsep.data.shards import write_shards as write_shards
    from wildsep.data.stems import StemsFolderDataset as StemsFolderDataset
    from wildsep.data.stems import build_stems_loader as build_stems_loader
    from wildsep.data.stems import collate_stems as collate_stems
    from wildsep.data.streaming import StreamingClipDataset as StreamingClipDataset
    from wildsep.data.streaming import stream_corpus as stream_corpus


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
