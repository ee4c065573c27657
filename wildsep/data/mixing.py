"""TUSS dynamic mixing (reference §7): prompt-conditioned mixtures built on the fly from
labeled source pools.

For key ``(epoch, i, N)``: draw N prompt classes from the Markov chain, one clip per prompt
from that class's pool (backgrounds sometimes built from several clips of their component
classes instead), optionally let it sound on a random span only, scale each to unit level
(RMS over the crop, or over its active part), apply a per-class random gain, and sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute  # registers pa.compute
import torch
from torch.utils.data import Dataset

from wildsep.data.clips import STREAM_MIX, ClipSampler, as_tensor, keyed_rng, parse_key
from wildsep.data.config import ClipConfig, DynamicMixingConfig
from wildsep.data.index import CorpusIndex, arrow_table
from wildsep.data.prompts import MarkovPromptSampler


def unit_rms(x: np.ndarray) -> np.ndarray:
    """Scale to RMS 1 (silence stays silent)."""
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return x / np.float32(rms) if rms > 0 else x


def active_rms(x: np.ndarray, sample_rate: int, active_db: float = -40.0) -> float:
    """RMS over the active part of `x` (C, T): the 20 ms frames whose RMS is within
    `active_db` of the loudest frame's (0 for silence)."""
    frame = max(1, min(sample_rate // 50, x.shape[-1]))
    count = x.shape[-1] // frame
    frames = x[..., : count * frame].reshape(*x.shape[:-1], count, frame)
    power = np.mean(np.square(frames, dtype=np.float64), axis=(0, -1))  # (frames,)
    if x.shape[-1] > count * frame:  # the tail shorter than a frame counts with its own power
        power = np.append(power, np.mean(np.square(x[..., count * frame :], dtype=np.float64)))
    if power.max() <= 0:
        return 0.0
    active = power >= power.max() * 10 ** (active_db / 10)
    sizes = np.full(power.shape, frame, dtype=np.float64)
    sizes[-1] = x.shape[-1] - frame * (len(power) - 1)
    return float(np.sqrt(np.sum(power[active] * sizes[active]) / np.sum(sizes[active])))


def span_gate(rng: np.random.Generator, length: int, min_fraction: float, fade: int) -> np.ndarray:
    """(T,) gain that is 1 on a random span of at least `min_fraction`·T samples (linear fades
    of `fade` samples inside it) and 0 elsewhere."""
    span = round(length * rng.uniform(min_fraction, 1.0))
    start = int(rng.integers(0, length - span + 1))
    t = np.arange(length, dtype=np.float64)
    ramp = np.minimum(t - start + 1, start + span - t) / max(1, fade)
    return np.clip(ramp, 0.0, 1.0).astype(np.float32)


def _db(rng: np.random.Generator, low_high: Sequence[float]) -> np.float32:
    return np.float32(10.0 ** (rng.uniform(low_high[0], low_high[1]) / 20.0))


class DynamicMixingDataset(Dataset):
    """Mixtures of N labeled sources with their prompts.

    Item ``(epoch, i, N)`` (from :class:`wildsep.data.FixedNumSourcesBatchSampler`) is a pure
    function of (seed, epoch, i, N); a key without N draws N from the configured weights.
    Returns ``{"mixture": ([C,] T), "references": (N, [C,] T), "prompts": list[str]}`` with
    mixture = references.sum(0). `pools` must have a ``class`` column.
    """

    def __init__(
        self,
        pools: CorpusIndex | datasets.Dataset,
        config: DynamicMixingConfig | None = None,
        clip_config: ClipConfig | None = None,
        *,
        seed: int = 0,
    ) -> None:
        self.config = (config or DynamicMixingConfig()).resolved()
        # Sources are scaled to unit RMS here, so per-clip normalisation would be wasted work.
        self.clip_config = replace(clip_config or ClipConfig(), normalize="none")
        self.seed = seed
        self.chain = MarkovPromptSampler(self.config.prompts)
        table = arrow_table(pools)
        if "class" not in table.column_names:
            raise ValueError(
                "dynamic mixing needs labeled pools (a `class` column); index them with "
                "class_from_folder=True or a manifest class column"
            )
        self.sampler = ClipSampler(table, self.clip_config)
        # Class codes rather than one Python string per file.
        classes = pa.compute.dictionary_encode(table.column("class")).combine_chunks()
        codes = classes.indices.to_numpy(zero_copy_only=False)
        self.pools = {
            name: np.flatnonzero(codes == code)
            for code, name in enumerate(classes.dictionary.to_pylist())
        }
        self._check_pools()

    def _check_pools(self) -> None:
        assert self.config.backgrounds is not None
        for c in self.chain.classes:
            if c in self.pools:
                continue
            background = self.config.backgrounds.get(c)
            usable = background and any(k in self.pools for k in background.components)
            if not usable:
                raise ValueError(
                    f"the prompt chain can draw {c!r} but the pools have no {c!r} files"
                    + (" and none of its background components" if background else "")
                    + f"; pool classes are {sorted(self.pools)}. Add files or remove {c!r} "
                    "from dynamic_mixing.prompts"
                )

    def __len__(self) -> int:
        return self.config.items_per_epoch

    def _unit_level(self, x: np.ndarray) -> np.ndarray:
        if self.config.level == "rms":
            return unit_rms(x)
        level = active_rms(x, self.clip_config.sample_rate, self.config.active_db)
        return x / np.float32(level) if level > 0 else x

    def _clip_of_class(self, rng: np.random.Generator, class_name: str) -> np.ndarray:
        pool = self.pools[class_name]
        return self._unit_level(self.sampler.draw(rng, int(pool[rng.integers(len(pool))]), pool))

    def _source(self, rng: np.random.Generator, class_name: str) -> np.ndarray:
        """One unit-RMS source of `class_name`, loaded or built on the fly: (C, T)."""
        assert self.config.backgrounds is not None
        background = self.config.backgrounds.get(class_name)
        components = [c for c in background.components if c in self.pools] if background else []
        build = bool(components) and (
            class_name not in self.pools or rng.random() < background.on_the_fly_prob
        )
        if not build:
            return self._clip_of_class(rng, class_name)
        assert background is not None
        count = int(rng.integers(background.count[0], background.count[1] + 1))
        parts = [
            self._clip_of_class(rng, components[rng.integers(len(components))])
            * _db(rng, background.component_gain_db)
            for _ in range(count)
        ]
        return self._unit_level(np.sum(parts, axis=0))

    def _partial(self, rng: np.random.Generator, class_name: str, source: np.ndarray) -> np.ndarray:
        """The source, sounding only on a random span with probability partial_prob[class]."""
        prob = self.config.partial_prob.get(class_name, 0.0)
        if prob == 0.0 or rng.random() >= prob:
            return source
        fade = max(1, self.clip_config.sample_rate // 100)
        gated = source * span_gate(rng, source.shape[-1], self.config.partial_min, fade)
        if not np.any(gated):  # the span fell where the clip itself is silent: keep it whole
            return source
        return self._unit_level(gated) if self.config.level == "active_rms" else gated

    def num_sources_for(self, rng: np.random.Generator) -> int:
        weights = np.asarray(self.config.source_count_weights())
        return int(self.config.num_sources[rng.choice(len(weights), p=weights / weights.sum())])

    def __getitem__(self, key: int | Sequence[int]) -> dict[str, Any]:
        parts = parse_key(key)
        epoch, i = parts[0], parts[1]
        if len(parts) > 2:
            n = parts[2]
        else:
            n = self.num_sources_for(keyed_rng(self.seed, STREAM_MIX, epoch, i))
        rng = keyed_rng(self.seed, STREAM_MIX, epoch, i, n)
        prompts = self.chain.sample(n, rng)
        assert self.config.gain_db is not None
        sources = np.stack(
            [
                self._partial(rng, c, self._source(rng, c)) * _db(rng, self.config.gain_db[c])
                for c in prompts
            ]
        )
        references = torch.stack([as_tensor(s) for s in sources])
        return {"mixture": references.sum(0), "references": references, "prompts": prompts}


def collate_dynamic_mixing(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"mixture": (B, [C,] T), "references": (B, N, [C,] T), "prompts": list[list[str]]}``.

    All items must have the same N (use :class:`wildsep.data.FixedNumSourcesBatchSampler`).
    """
    sizes = {len(item["prompts"]) for item in items}
    if len(sizes) != 1:
        raise ValueError(
            f"items with different numbers of sources {sorted(sizes)} in one batch; batch them "
            "with FixedNumSourcesBatchSampler"
        )
    return {
        "mixture": torch.stack([item["mixture"] for item in items]),
        "references": torch.stack([item["references"] for item in items]),
        "prompts": [item["prompts"] for item in items],
    }
