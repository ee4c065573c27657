"""Audio data pipeline: corpus indexing and streaming, clip sampling, mixtures of mixtures,
prompt-conditioned dynamic mixing, Demucs augmentations and evaluation sets.

See docs/data.md. The demo corpus lives in :mod:`wildsep.data.demo`.
"""

from wildsep.data.audio_io import (
    AudioInfo,
    FileCheck,
    check_audio_file,
    load_audio,
    load_span,
    probe,
    resample,
)
from wildsep.data.augment import Augment, FlipChannels, FlipSign, Remix, Scale, Shift
from wildsep.data.clips import ClipDataset, ClipSampler, collate_clips
from wildsep.data.config import (
    AugmentConfig,
    BackgroundConfig,
    ClipConfig,
    CorpusConfig,
    DataConfig,
    DynamicMixingConfig,
    MixITConfig,
    PromptConfig,
    load_data_config,
)
from wildsep.data.evalset import EvalSetDataset, collate_eval
from wildsep.data.index import CorpusIndex, build_corpus_index
from wildsep.data.loaders import build_dynamic_mixing_loader, build_eval_loader, build_mixit_loader
from wildsep.data.mixing import DynamicMixingDataset, collate_dynamic_mixing
from wildsep.data.mixit import MixtureOfMixturesDataset, collate_mixture_of_mixtures, pair_clips
from wildsep.data.prompts import MarkovPromptSampler
from wildsep.data.sampler import FixedNumSourcesBatchSampler, ResumableBatchSampler
from wildsep.data.streaming import StreamingClipDataset, stream_corpus

__all__ = [
    "AudioInfo",
    "Augment",
    "AugmentConfig",
    "BackgroundConfig",
    "ClipConfig",
    "ClipDataset",
    "ClipSampler",
    "CorpusConfig",
    "CorpusIndex",
    "DataConfig",
    "DynamicMixingConfig",
    "DynamicMixingDataset",
    "EvalSetDataset",
    "FileCheck",
    "FixedNumSourcesBatchSampler",
    "FlipChannels",
    "FlipSign",
    "MarkovPromptSampler",
    "MixITConfig",
    "MixtureOfMixturesDataset",
    "PromptConfig",
    "Remix",
    "ResumableBatchSampler",
    "Scale",
    "Shift",
    "StreamingClipDataset",
    "build_corpus_index",
    "build_dynamic_mixing_loader",
    "build_eval_loader",
    "build_mixit_loader",
    "check_audio_file",
    "collate_clips",
    "collate_dynamic_mixing",
    "collate_eval",
    "collate_mixture_of_mixtures",
    "load_audio",
    "load_data_config",
    "load_span",
    "pair_clips",
    "probe",
    "resample",
    "stream_corpus",
]
