"""Typed configuration of the data pipeline.

Plain dataclasses, usable directly in Python or as omegaconf structured configs: load a YAML
file with :func:`load_data_config`, and a misspelt key fails at start with a message naming the
key and the valid ones. Values are checked in ``__post_init__`` so a bad choice also fails at
start.

Probability and gain tables default to ``None``, meaning "the built-in TUSS setting"; a table
given in YAML replaces the built-in one as a whole instead of being merged key by key, so
leaving a class out of a table really leaves it out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

TUSS_CLASSES = ("speech", "sfx", "sfxbg", "drums", "bass", "vocals", "other", "musicbg")
BACKGROUND_CLASSES = ("sfxbg", "musicbg")
STEM_CLASSES = ("drums", "bass", "vocals", "other")

CHANNEL_MODES = ("mono", "first", "random", "stereo")
NORMALISATIONS = ("none", "rms", "peak")
LEVELS = ("rms", "active_rms")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose from {list(choices)}")


def _range(name: str, values: list[float] | None, *, allow_none: bool = True) -> None:
    if values is None and allow_none:
        return
    if values is None or len(values) != 2 or values[0] > values[1]:
        raise ValueError(f"{name} must be a [low, high] pair with low <= high, got {values}")


@dataclass
class CorpusConfig:
    """Where a corpus is and how to index it (see :func:`wildsep.data.build_corpus_index`)."""

    source: str = ""
    """A folder (scanned recursively) or a manifest: .csv, .tsv, .jsonl/.json or .parquet."""
    path_column: str = "path"
    """Manifest column holding audio paths (relative paths are relative to the manifest)."""
    class_column: str | None = None
    """Manifest column holding each file's class (labeled source pools)."""
    class_from_folder: bool = False
    """Folders only: the class is the first folder below `source` (``pools/<class>/...``)."""
    extensions: list[str] | None = None
    """File suffixes considered audio when scanning a folder; None = every format soundfile
    reads plus common ones it cannot (those are reported as unsupported)."""
    silence_threshold_db: float = -60.0
    """Files whose peak is below this (dBFS) are reported as silent and skipped."""
    validate_audio: bool = True
    """Decode every file once while indexing (catches NaN/Inf, silence, truncation). False reads
    headers only, for very large corpora; bad files are then skipped when first read."""
    cache_dir: str | None = None
    """Where indexes and skip reports live; default $WILDSEP_CACHE or ~/.cache/wildsep."""
    num_proc: int | None = None
    """Processes used to scan; None = all cores."""

    def __post_init__(self) -> None:
        if self.extensions is not None:
            self.extensions = ["." + e.lower().lstrip(".") for e in self.extensions]


@dataclass
class ClipConfig:
    """How fixed-length training clips are cut from files."""

    sample_rate: int = 16000
    """Target rate; files at other rates are resampled (soxr, > 120 dB anti-aliasing)."""
    duration: float = 4.0
    """Clip length in seconds. Files shorter than this are zero-padded at a random offset."""
    channels: str = "mono"
    """'mono' (average of all channels), 'first', 'random' (one channel at random) or 'stereo'
    (two channels; mono files are duplicated, extra channels dropped)."""
    silence_threshold_db: float = -60.0
    """A crop whose RMS (dBFS) is below this is rejected and redrawn."""
    max_attempts: int = 10
    """Crops drawn before giving up on silence rejection (the last crop is then used)."""
    normalize: str = "rms"
    """Per-clip normalisation: 'none', 'rms' or 'peak', to `target_db`."""
    target_db: float = -20.0
    """Level in dBFS (RMS or peak, depending on `normalize`)."""

    def __post_init__(self) -> None:
        _choice("channels", self.channels, CHANNEL_MODES)
        _choice("normalize", self.normalize, NORMALISATIONS)
        if self.sample_rate <= 0 or self.duration <= 0 or self.max_attempts < 1:
            raise ValueError("sample_rate, duration and max_attempts must be positive")

    @property
    def num_frames(self) -> int:
        return round(self.sample_rate * self.duration)

    @property
    def num_channels(self) -> int:
        return 2 if self.channels == "stereo" else 1


@dataclass
class MixITConfig:
    """Mixtures of mixtures: two clips x₁, x₂ → x̄ = x₁ + x₂ (reference §3)."""

    gain_db: list[float] | None = None
    """If set, each reference mixture gets an independent random gain U[low, high] dB."""
    silent_prob: float = 0.0
    """Probability that the second mixture of a pair is silent, so the MoM is the first
    mixture alone: the model then also sees inputs of a single mixture (with as few as one
    source), as at test time, and learns to leave outputs silent (Wisdom et al. 2021)."""

    def __post_init__(self) -> None:
        _range("mixit.gain_db", self.gain_db)
        if not 0.0 <= self.silent_prob <= 1.0:
            raise ValueError(f"mixit.silent_prob must be in [0, 1], got {self.silent_prob}")


@dataclass
class BackgroundConfig:
    """How a background class (sfxbg, musicbg) is built on the fly from other clips."""

    components: list[str] = field(default_factory=list)
    """Classes whose clips are summed into the background (one drawn per component)."""
    count: list[int] = field(default_factory=lambda: [1, 4])
    """Number of components, drawn uniformly from [low, high]."""
    on_the_fly_prob: float = 0.5
    """Probability of building instead of loading (1.0 when the class has no pool)."""
    component_gain_db: list[float] = field(default_factory=lambda: [-10.0, 0.0])
    """Gain of each unit-RMS component before the sum is scaled back to unit RMS."""

    def __post_init__(self) -> None:
        _range("background.count", [float(c) for c in self.count], allow_none=False)
        _range("background.component_gain_db", self.component_gain_db, allow_none=False)
        if self.count[0] < 1 or not 0.0 <= self.on_the_fly_prob <= 1.0:
            raise ValueError("background.count must be >= 1 and on_the_fly_prob in [0, 1]")


def _tuss_initial() -> dict[str, float]:
    return dict.fromkeys(TUSS_CLASSES, 1.0)


def _tuss_transitions() -> dict[str, dict[str, float]]:
    return {c: dict.fromkeys(TUSS_CLASSES, 1.0) for c in TUSS_CLASSES}


def _tuss_max_appearances() -> dict[str, int]:
    # Reference §7: backgrounds and stems at most once; speech and sfx may repeat.
    return dict.fromkeys(BACKGROUND_CLASSES + STEM_CLASSES, 1)


def _tuss_gains() -> dict[str, list[float]]:
    gains = {"speech": [-10.0, 0.0], "sfx": [-20.0, 0.0]}
    gains |= {c: [-20.0, 0.0] for c in BACKGROUND_CLASSES}
    gains |= {c: [-10.0, 0.0] for c in STEM_CLASSES}
    return gains


def _tuss_backgrounds() -> dict[str, BackgroundConfig]:
    return {
        "sfxbg": BackgroundConfig(components=["sfx"]),
        "musicbg": BackgroundConfig(components=list(STEM_CLASSES)),
    }


@dataclass
class PromptConfig:
    """Markov chain over prompt classes (reference §7).

    Probabilities need not sum to one (they are normalised). A class missing from a row has
    probability zero; a class missing from `max_appearances` may appear any number of times.
    `None` means the built-in TUSS table; :meth:`resolved` fills those in.
    """

    initial: dict[str, float] | None = None
    """Probability of each class as the first prompt; None = uniform over the TUSS classes."""
    transitions: dict[str, dict[str, float]] | None = None
    """transitions[a][b] = probability that prompt b follows prompt a; None = uniform."""
    max_appearances: dict[str, int] | None = None
    """Most times a class may appear in one sequence; None = backgrounds and stems once."""

    def __post_init__(self) -> None:
        initial, transitions = self._initial(), self._transitions()
        tables = {"initial": initial} | {f"transitions.{k}": row for k, row in transitions.items()}
        for name, table in tables.items():
            if any(p < 0 for p in table.values()) or not any(p > 0 for p in table.values()):
                raise ValueError(f"prompts.{name}: probabilities must be >= 0, not all zero")
        drawable = set(initial).union(*(row.keys() for row in transitions.values()))
        missing = drawable - set(transitions)
        if missing:
            raise ValueError(
                f"prompts.transitions has no row for {sorted(missing)}: every class that can be "
                "drawn needs a row of next-prompt probabilities"
            )

    def _initial(self) -> dict[str, float]:
        return dict(self.initial) if self.initial is not None else _tuss_initial()

    def _transitions(self) -> dict[str, dict[str, float]]:
        if self.transitions is None:
            return _tuss_transitions()
        return {k: dict(row) for k, row in self.transitions.items()}

    def resolved(self) -> PromptConfig:
        """A copy with every `None` table replaced by the built-in one."""
        transitions = self._transitions()
        if self.max_appearances is not None:
            max_appearances = dict(self.max_appearances)
        else:  # the TUSS limits of the classes this chain has
            max_appearances = {c: n for c, n in _tuss_max_appearances().items() if c in transitions}
        return PromptConfig(self._initial(), transitions, max_appearances)

    @property
    def classes(self) -> list[str]:
        """Every class the chain can emit (the rows of the transition table)."""
        return list(self._transitions())


@dataclass
class DynamicMixingConfig:
    """TUSS-style dynamic mixing from labeled source pools (reference §7)."""

    num_sources: list[int] = field(default_factory=lambda: [2, 3, 4])
    """Possible numbers of sources N; one is drawn per batch."""
    num_sources_weights: list[float] | None = None
    """Relative probability of each entry of `num_sources`; None = equally likely."""
    prompts: PromptConfig = field(default_factory=PromptConfig)
    gain_db: dict[str, list[float]] | None = None
    """Per-class gain range in dB applied after unit-RMS scaling; None = TUSS ranges."""
    backgrounds: dict[str, BackgroundConfig] | None = None
    """Classes that may be built on the fly; None = sfxbg from sfx, musicbg from stems."""
    items_per_epoch: int = 10000
    """Virtual epoch length (examples per epoch over all ranks)."""
    level: str = "active_rms"
    """What unit level means before the per-class gain: 'active_rms' over the source's active
    part only (its frames within `active_db` of its loudest), as real mixtures are leveled, so
    a short event is not boosted by the silence around it; or 'rms' over the whole crop."""
    active_db: float = -40.0
    """Frames (20 ms) quieter than the loudest by more than this are inactive ('active_rms')."""
    partial_prob: dict[str, float] = field(default_factory=dict)
    """Per class, the probability that a source sounds only on a random span of the crop
    (silent elsewhere, 10 ms fades), so that training mixtures have onsets and offsets as real
    recordings do; e.g. {speech: 0.5, sfx: 0.5}. Classes not listed always fill the crop."""
    partial_min: float = 0.2
    """Shortest span, as a fraction of the crop."""

    def __post_init__(self) -> None:
        weights = self.source_count_weights()
        if (
            not self.num_sources
            or min(self.num_sources) < 1
            or len(set(self.num_sources)) != len(self.num_sources)
        ):
            raise ValueError(
                f"dynamic_mixing.num_sources must be distinct N >= 1, got {self.num_sources}"
            )
        if len(weights) != len(self.num_sources) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(
                "dynamic_mixing.num_sources_weights needs one weight >= 0 per entry of "
                f"num_sources ({self.num_sources}), not all zero; got {self.num_sources_weights}"
            )
        gains = self.gain_db if self.gain_db is not None else _tuss_gains()
        for name, pair in gains.items():
            _range(f"dynamic_mixing.gain_db.{name}", pair, allow_none=False)
        missing = set(self.prompts.classes) - set(gains)
        if missing:
            raise ValueError(f"dynamic_mixing.gain_db has no range for classes {sorted(missing)}")
        if self.items_per_epoch < 1:
            raise ValueError("dynamic_mixing.items_per_epoch must be >= 1")
        _choice("dynamic_mixing.level", self.level, LEVELS)
        if any(not 0.0 <= p <= 1.0 for p in self.partial_prob.values()):
            raise ValueError("dynamic_mixing.partial_prob values must be in [0, 1]")
        if not 0.0 < self.partial_min <= 1.0:
            raise ValueError("dynamic_mixing.partial_min must be in (0, 1]")

    def source_count_weights(self) -> list[float]:
        """Weights of `num_sources`, filled in as equal when not given."""
        if self.num_sources_weights is None:
            return [1.0] * len(self.num_sources)
        return list(self.num_sources_weights)

    def resolved(self) -> DynamicMixingConfig:
        """A copy with every `None` table replaced by the built-in TUSS one."""
        return DynamicMixingConfig(
            num_sources=list(self.num_sources),
            num_sources_weights=self.source_count_weights(),
            prompts=self.prompts.resolved(),
            gain_db=dict(self.gain_db) if self.gain_db is not None else _tuss_gains(),
            backgrounds=(
                dict(self.backgrounds) if self.backgrounds is not None else _tuss_backgrounds()
            ),
            items_per_epoch=self.items_per_epoch,
            level=self.level,
            active_db=self.active_db,
            partial_prob=dict(self.partial_prob),
            partial_min=self.partial_min,
        )


@dataclass
class AugmentConfig:
    """Demucs augmentations on stacked sources (B, S, C, T) (reference §5). Zero/None = off."""

    shift_seconds: float = 0.0
    """Random per-source offset of up to this many seconds; output is shorter by as much."""
    flip_sign_prob: float = 0.0
    flip_channels_prob: float = 0.0
    scale: list[float] | None = None
    """Random per-source gain factor U[low, high] (Demucs: [0.25, 1.25])."""
    remix_group_size: int = 0
    """Shuffle each source across examples within groups of this size (Demucs: 4); 0 = off."""

    def __post_init__(self) -> None:
        _range("augment.scale", self.scale)
        for name in ("flip_sign_prob", "flip_channels_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1]")
        if self.shift_seconds < 0 or self.remix_group_size < 0 or self.remix_group_size == 1:
            raise ValueError("augment.shift_seconds must be >= 0 and remix_group_size 0 or >= 2")

    @property
    def enabled(self) -> bool:
        return bool(
            self.shift_seconds
            or self.flip_sign_prob
            or self.flip_channels_prob
            or self.scale is not None
            or self.remix_group_size
        )


@dataclass
class StemsFolderConfig:
    """A folder of multitrack songs in the MUSDB18-HQ layout: ``<source>/<track>/<stem>.<ext>``
    (e.g. ``musdb18hq/train/Song - Title/{mixture,drums,bass,vocals,other}.wav``). A training
    crop reads every stem of one track at the same offset; the mixture is their sum."""

    source: str = ""
    """The folder of track folders; empty = take stems from the labeled pools instead."""
    extension: str = "wav"
    """Suffix of the stem files."""
    items_per_epoch: int = 0
    """Crops per epoch (a random track and offset each); 0 = one crop per track."""

    def __post_init__(self) -> None:
        self.extension = self.extension.lstrip(".")
        if self.items_per_epoch < 0:
            raise ValueError("stems.items_per_epoch must be >= 0 (0 = one crop per track)")


@dataclass
class DataConfig:
    """Everything the training data loaders need, as one structured config."""

    seed: int = 0
    batch_size: int = 4
    num_workers: int = 2
    drop_last: bool = True
    """Drop an epoch's incomplete last batch; False fills it by wrapping around to the first
    items (so a corpus smaller than one batch still trains, with repeats)."""
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    """The unlabeled corpus (MixIT pre-training)."""
    pools: CorpusConfig = field(default_factory=lambda: CorpusConfig(class_from_folder=True))
    """Labeled source pools (dynamic mixing)."""
    clips: ClipConfig = field(default_factory=ClipConfig)
    mixit: MixITConfig = field(default_factory=MixITConfig)
    dynamic_mixing: DynamicMixingConfig = field(default_factory=DynamicMixingConfig)
    stems: StemsFolderConfig = field(default_factory=StemsFolderConfig)
    """Multitrack songs for a fixed-stem stage (Demucs on MUSDB); unset: stems are drawn from
    `pools`, one clip of each stem class per mixture."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.num_workers < 0:
            raise ValueError("data.batch_size must be >= 1 and data.num_workers >= 0")


def default_cache_dir() -> Path:
    """$WILDSEP_CACHE, else $XDG_CACHE_HOME/wildsep, else ~/.cache/wildsep."""
    if os.environ.get("WILDSEP_CACHE"):
        return Path(os.environ["WILDSEP_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "wildsep"


def load_data_config(
    source: str | os.PathLike | dict[str, Any] | DictConfig | None = None,
    overrides: list[str] | None = None,
) -> DataConfig:
    """Build a :class:`DataConfig` from a YAML file, a dict or a DictConfig, plus dot-list
    overrides (``["clips.duration=6", "batch_size=8"]``). Unknown keys raise ``ValueError``."""
    schema = OmegaConf.structured(DataConfig)
    layers: list[Any] = []
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"data config {path} does not exist")
        layers.append(OmegaConf.load(path))
    elif source is not None:
        layers.append(OmegaConf.create(source) if isinstance(source, dict) else source)
    if overrides:
        layers.append(OmegaConf.from_dotlist(overrides))
    try:
        return OmegaConf.to_object(OmegaConf.merge(schema, *layers))  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        # omegaconf's message names the key and suggests the nearest valid one; drop its
        # traceback, which points into omegaconf rather than at the user's file.
        raise ValueError(f"invalid data config: {err}") from None
