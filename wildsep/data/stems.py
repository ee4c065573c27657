"""Fixed-stem training data (music: drums, bass, vocals, other), for a model whose output s is
always stem s (Demucs, `wildsep.objectives.StemsObjective`).

Two sources of stems, both giving batches ``{"mixture": (B, [C,] T), "references": (B, S,
[C,] T)}`` with the references in the order of `stems` and mixture = their sum:

- a folder of multitrack songs in the MUSDB18-HQ layout (:class:`StemsFolderDataset`): every
  stem of one track cropped at the same offset, at the track's own levels;
- the labeled pools (dynamic mixing): each stem class exactly once per mixture, one clip of
  each drawn independently (:func:`stems_mixing_config`), references put in stem order by
  their classes.

Random choices are keyed on (seed, epoch, position), so a resumed run reads the same batches.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset

from wildsep.data.audio_io import load_span
from wildsep.data.clips import STREAM_CLIP, STREAM_ORDER, as_tensor, keyed_rng, parse_key
from wildsep.data.config import (
    ClipConfig,
    DataConfig,
    DynamicMixingConfig,
    PromptConfig,
    StemsFolderConfig,
)
from wildsep.data.index import CorpusIndex, build_corpus_index
from wildsep.data.loaders import _check_one_batch, keyed_loader
from wildsep.data.mixing import DynamicMixingDataset
from wildsep.data.sampler import FixedNumSourcesBatchSampler, ResumableBatchSampler


@dataclasses.dataclass(frozen=True)
class Track:
    name: str
    paths: tuple[str, ...]  # one file per stem, in stem order
    sample_rate: int
    frames: int  # the shortest stem's length


def find_tracks(folder: str | Path, stems: Sequence[str], extension: str = "wav") -> list[Track]:
    """The track folders of `folder` (sorted by name) with one `<stem>.<extension>` per stem.

    Raises ValueError naming the first track that lacks a stem or whose stems differ in rate,
    and when the folder holds no track at all.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ValueError(f"stems folder {root} does not exist (data.stems.source)")
    tracks = []
    for track in sorted(p for p in root.iterdir() if p.is_dir()):
        paths = [track / f"{stem}.{extension}" for stem in stems]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise ValueError(
                f"track {track} lacks {missing}; every track folder needs "
                f"{[f'{s}.{extension}' for s in stems]} (MUSDB18-HQ layout)"
            )
        infos = [sf.info(str(p)) for p in paths]
        rates = {info.samplerate for info in infos}
        if len(rates) != 1:
            raise ValueError(f"the stems of {track} have different sample rates {sorted(rates)}")
        frames = min(info.frames for info in infos)
        tracks.append(Track(track.name, tuple(map(str, paths)), rates.pop(), frames))
    if not tracks:
        raise ValueError(
            f"{root} holds no track folders; expected {root}/<track>/"
            f"{{{','.join(stems)}}}.{extension}"
        )
    return tracks


class StemsFolderDataset(Dataset):
    """Crops of multitrack songs: item ``(epoch, i)`` is track i of epoch `epoch`'s random
    track order (cycling when `items_per_epoch` exceeds the tracks), all stems cut at one
    random offset and resampled to `clips.sample_rate`. Stems keep their levels (no per-clip
    normalisation: the mixture must stay their sum); a track shorter than the crop is
    zero-padded at a random offset. Returns ``{"mixture": ([C,] T), "references":
    (S, [C,] T)}``."""

    def __init__(
        self,
        config: StemsFolderConfig,
        stems: Sequence[str],
        clips: ClipConfig,
        *,
        seed: int = 0,
    ) -> None:
        self.tracks = find_tracks(config.source, stems, config.extension)
        self.stems, self.clips, self.seed = tuple(stems), clips, seed
        self.items = config.items_per_epoch or len(self.tracks)

    def __len__(self) -> int:
        return self.items

    def track_at(self, epoch: int, position: int) -> Track:
        count = len(self.tracks)
        cycle, offset = divmod(position, count)
        order = keyed_rng(self.seed, STREAM_ORDER, epoch, cycle).permutation(count)
        return self.tracks[int(order[offset])]

    def __getitem__(self, key: int | Sequence[int]) -> dict[str, torch.Tensor]:
        epoch, position = parse_key(key)[:2]
        position %= self.items
        track = self.track_at(epoch, position)
        rng = keyed_rng(self.seed, STREAM_CLIP, epoch, position)
        needed = math.ceil(self.clips.num_frames * track.sample_rate / self.clips.sample_rate)
        spare = track.frames - needed
        start = int(rng.integers(0, spare + 1)) if spare >= 0 else -int(rng.integers(-spare + 1))
        channel_seed = int(rng.integers(2**31))  # "random" channels: the same for every stem
        references = torch.stack(
            [
                as_tensor(
                    load_span(
                        path,
                        start,
                        self.clips.num_frames,
                        self.clips.sample_rate,
                        channels=self.clips.channels,
                        rng=np.random.default_rng(channel_seed),
                    )
                )
                for path in track.paths
            ]
        )
        return {"mixture": references.sum(0), "references": references}


def stems_mixing_config(mixing: DynamicMixingConfig, stems: Sequence[str]) -> DynamicMixingConfig:
    """`mixing` drawing every stem class exactly once per mixture: N = S sources, a prompt
    chain over the stems only, each at most once (gains, levels and epoch length kept)."""
    uniform = dict.fromkeys(stems, 1.0)
    chain = PromptConfig(
        initial=dict(uniform),
        transitions={stem: dict(uniform) for stem in stems},
        max_appearances=dict.fromkeys(stems, 1),
    )
    return dataclasses.replace(
        mixing, num_sources=[len(stems)], num_sources_weights=None, prompts=chain
    )


def collate_stems(items: list[dict[str, Any]], stems: Sequence[str] | None = None) -> dict:
    """``{"mixture": (B, [C,] T), "references": (B, S, [C,] T)}``. Items of dynamic mixing
    (with "prompts") have their references put in `stems` order by class first."""
    references = []
    for item in items:
        refs = item["references"]
        if "prompts" in item:
            assert stems is not None and sorted(item["prompts"]) == sorted(stems)
            refs = refs[[item["prompts"].index(stem) for stem in stems]]
        references.append(refs)
    stacked = torch.stack(references)
    return {"mixture": stacked.sum(1), "references": stacked}


def build_stems_loader(
    config: DataConfig,
    stems: Sequence[str],
    *,
    rank: int = 0,
    world_size: int = 1,
    pools: CorpusIndex | None = None,
) -> tuple[DataLoader, ResumableBatchSampler]:
    """Batches of the S `stems` in order: from `config.stems.source` (a folder of tracks) when
    set, else dynamic mixtures of `config.pools` (indexed here unless `pools` is given) with
    each stem class once."""
    collate = functools.partial(collate_stems, stems=tuple(stems))
    dataset: Dataset
    if config.stems.source:
        dataset = StemsFolderDataset(config.stems, stems, config.clips, seed=config.seed)
        _check_one_batch(len(dataset), "stem crops per epoch", config, world_size)
        sampler = ResumableBatchSampler(
            len(dataset),
            config.batch_size,
            rank=rank,
            world_size=world_size,
            drop_last=config.drop_last,
        )
    else:
        pools = pools or build_corpus_index(config.pools)
        mixing = stems_mixing_config(config.dynamic_mixing, stems)
        dataset = DynamicMixingDataset(pools, mixing, config.clips, seed=config.seed)
        _check_one_batch(len(dataset), "stem mixtures per epoch", config, world_size)
        sampler = FixedNumSourcesBatchSampler(
            len(dataset),
            config.batch_size,
            [len(stems)],
            seed=config.seed,
            rank=rank,
            world_size=world_size,
            drop_last=config.drop_last,
        )
    return keyed_loader(dataset, sampler, collate, config.num_workers, config.seed), sampler
