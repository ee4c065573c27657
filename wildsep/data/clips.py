"""Fixed-length training clips cut at random from indexed files.

Randomness is keyed, never stateful: the clip for key ``(epoch, position)`` is drawn with a
generator seeded by ``(seed, epoch, position)``, so it is the same whichever rank, worker or
process asks for it, and a resumed run reproduces an uninterrupted one exactly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import BinaryIO

import datasets
import numpy as np
import pyarrow as pa
import soundfile as sf
import torch
from torch.utils.data import Dataset

from wildsep.data.audio_io import load_span
from wildsep.data.config import ClipConfig
from wildsep.data.index import CorpusIndex, arrow_table

logger = logging.getLogger(__name__)

# Distinct streams for the distinct random decisions derived from one key, so that e.g. the
# file order of an epoch and the crop of position 0 never share a seed.
STREAM_ORDER, STREAM_CLIP, STREAM_GAIN, STREAM_MIX, STREAM_BATCH = range(5)
_CROPS_PER_FILE = 3  # silent crops tolerated before trying another file
_MAX_UNREADABLE = 50  # consecutive unreadable files before concluding the corpus is gone


def keyed_rng(seed: int, *key: int) -> np.random.Generator:
    """A generator that is a pure function of (seed, key...)."""
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def parse_key(key: int | Sequence[int]) -> tuple[int, ...]:
    """Sampler keys are ``(epoch, position, ...)``; a bare int means epoch 0."""
    if isinstance(key, (int, np.integer)):
        return (0, int(key))
    return tuple(int(k) for k in key)


def level_db(x: np.ndarray) -> float:
    """RMS level in dBFS (-inf for silence)."""
    power = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def normalise(x: np.ndarray, mode: str, target_db: float) -> np.ndarray:
    """Scale to `target_db` dBFS RMS ('rms') or peak ('peak'); 'none' and silence unchanged."""
    if mode == "none":
        return x
    if mode == "rms":
        current = level_db(x)
    else:
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        current = 20.0 * math.log10(peak) if peak > 0 else -math.inf
    if not math.isfinite(current):
        return x
    return x * np.float32(10.0 ** ((target_db - current) / 20.0))


def crop_file(
    rng: np.random.Generator,
    path: str | BinaryIO,
    sample_rate: int,
    frames: int,
    config: ClipConfig,
) -> np.ndarray:
    """One random crop of `config.duration` seconds at `config.sample_rate`: float32 (C, T).

    The start is drawn so the whole crop lies inside the file; a file shorter than the crop is
    placed at a random offset with zeros around it. Only the frames needed are decoded.
    """
    needed = math.ceil(config.num_frames * sample_rate / config.sample_rate)
    spare = frames - needed
    start = int(rng.integers(0, spare + 1)) if spare >= 0 else -int(rng.integers(0, -spare + 1))
    return load_span(
        path, start, config.num_frames, config.sample_rate, channels=config.channels, rng=rng
    )


def is_usable(clip: np.ndarray, config: ClipConfig) -> bool:
    """Finite and louder than the silence threshold."""
    return bool(np.isfinite(clip).all()) and level_db(clip) >= config.silence_threshold_db


class ClipSampler:
    """Cuts clips from the files of an index (the per-item work of every training dataset).

    Keeps the index's numeric columns as NumPy arrays (12 bytes per file) and the paths as the
    index's memory-mapped Arrow column, so worker processes share them and lookups cost no
    Python objects per file: a corpus of millions of files costs megabytes, not gigabytes.
    """

    def __init__(
        self, index: CorpusIndex | datasets.Dataset | pa.Table, config: ClipConfig
    ) -> None:
        table = arrow_table(index, ["path", "sample_rate", "frames"])
        if table.num_rows == 0:
            raise ValueError("cannot sample clips from an empty index")
        self.config = config
        self.paths = table.column("path")  # chunked and memory-mapped: not copied into RAM
        self.sample_rates = table.column("sample_rate").to_numpy().astype(np.int64)
        self.frames = table.column("frames").to_numpy().astype(np.int64)
        self._warned: set[str] = set()

    def __len__(self) -> int:
        return len(self.frames)

    def crop(self, rng: np.random.Generator, file_id: int) -> np.ndarray:
        """One random crop of file `file_id` (see :func:`crop_file`): (C, T)."""
        path = self.paths[file_id].as_py()
        sr, frames = int(self.sample_rates[file_id]), int(self.frames[file_id])
        return crop_file(rng, path, sr, frames, self.config)

    def draw(
        self, rng: np.random.Generator, file_id: int, pool: np.ndarray | None = None
    ) -> np.ndarray:
        """A non-silent, normalised crop, starting with file `file_id`: float32 (C, T).

        Silent crops are redrawn (another file after a few tries); unreadable files are logged
        once and replaced by another file. Replacements come from `pool` (row ids, e.g. the
        files of one class) or from the whole index. After `max_attempts` silent crops the last
        one is returned as is, so a quiet corpus slows nothing down.
        """

        def another_file() -> int:
            if pool is None:
                return int(rng.integers(len(self)))
            return int(pool[rng.integers(len(pool))])

        cfg = self.config
        clip: np.ndarray | None = None
        attempts = unreadable = 0
        while attempts < cfg.max_attempts:
            try:
                clip = self.crop(rng, file_id)
                unreadable = 0
            except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
                self._warn(file_id, err)
                unreadable += 1
                if unreadable >= _MAX_UNREADABLE:
                    raise RuntimeError(
                        f"{unreadable} consecutive files could not be read (last: "
                        f"{self.paths[file_id].as_py()}: {err}); is the corpus still there?"
                    ) from err
                file_id = another_file()
                continue
            attempts += 1
            finite = bool(np.isfinite(clip).all())
            if finite and level_db(clip) >= cfg.silence_threshold_db:
                return normalise(clip, cfg.normalize, cfg.target_db)
            if not finite:
                clip = np.nan_to_num(clip, nan=0.0, posinf=0.0, neginf=0.0)
            if not finite or attempts % _CROPS_PER_FILE == 0:
                file_id = another_file()
        assert clip is not None
        return normalise(clip, cfg.normalize, cfg.target_db)

    def _warn(self, file_id: int, err: Exception) -> None:
        path = self.paths[file_id].as_py()
        if path not in self._warned:
            self._warned.add(path)
            logger.warning("skipping unreadable file %s: %s", path, err)


def as_tensor(clip: np.ndarray) -> torch.Tensor:
    """(1, T) → (T,) for mono clips; (2, T) stays for stereo."""
    return torch.from_numpy(clip[0] if clip.shape[0] == 1 else clip)


class ClipDataset(Dataset):
    """Random clips, one per file per epoch, in a fresh random file order each epoch.

    Item ``(epoch, position)`` is a pure function of (seed, epoch, position): the file is
    position `position` of epoch `epoch`'s permutation of the index, the crop is drawn from a
    generator keyed on the same triple. Returns float32 (T,) (or (2, T) for stereo clips).
    Pair it with :class:`wildsep.data.ResumableBatchSampler`.
    """

    def __init__(
        self,
        index: CorpusIndex | datasets.Dataset,
        config: ClipConfig | None = None,
        *,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        self.config = config or ClipConfig()
        self.sampler = ClipSampler(index, self.config)
        self.seed = seed
        self.shuffle = shuffle

    def __len__(self) -> int:
        return len(self.sampler)

    def file_at(self, epoch: int, position: int) -> int:
        """Index row of the file at `position` of epoch `epoch`."""
        return int(_file_order(self.seed, epoch, len(self), self.shuffle)[position])

    def draw(self, epoch: int, position: int) -> np.ndarray:
        """The clip of key (epoch, position) as float32 (C, T)."""
        rng = keyed_rng(self.seed, STREAM_CLIP, epoch, position)
        return self.sampler.draw(rng, self.file_at(epoch, position))

    def __getitem__(self, key: int | Sequence[int]) -> torch.Tensor:
        epoch, position = parse_key(key)[:2]
        return as_tensor(self.draw(epoch, position % len(self)))


@lru_cache(maxsize=4)
def _file_order(seed: int, epoch: int, size: int, shuffle: bool) -> np.ndarray:
    # Cached: every item of an epoch needs it. A few entries cover epoch boundaries and datasets.
    if not shuffle:
        return np.arange(size)
    return keyed_rng(seed, STREAM_ORDER, epoch).permutation(size)


def collate_clips(items: list[torch.Tensor]) -> torch.Tensor:
    """Stack clips: (B, T) or (B, 2, T)."""
    return torch.stack(items)
