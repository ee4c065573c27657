"""Mixtures of mixtures: mixture = sum of the two reference mixtures, gains within range,
pairs redrawn every epoch."""

from pathlib import Path

import numpy as np
import pytest
import torch

from wildsep.data import (
    ClipConfig,
    ClipDataset,
    MixITConfig,
    MixtureOfMixturesDataset,
    build_corpus_index,
    collate_mixture_of_mixtures,
    pair_clips,
)
from wildsep.data.clips import level_db


@pytest.fixture(scope="module")
def clips(demo_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> ClipDataset:
    index = build_corpus_index(
        demo_corpus / "unlabeled.csv", cache_dir=tmp_path_factory.mktemp("c"), progress=False
    )
    return ClipDataset(index, ClipConfig(sample_rate=8000, duration=0.5), seed=0)


def test_batch_shapes_and_mixture_is_sum(clips: ClipDataset) -> None:
    mom = MixtureOfMixturesDataset(clips)
    batch = collate_mixture_of_mixtures([mom[(0, i)] for i in range(len(mom))])
    assert batch["references"].shape == (len(mom), 2, 4000)
    assert batch["mixture"].shape == (len(mom), 4000)
    torch.testing.assert_close(batch["mixture"], batch["references"].sum(1))
    # The two references of a pair are the epoch's clips 2i and 2i+1.
    torch.testing.assert_close(batch["references"][1, 0], clips[(0, 2)])


def test_random_gains_stay_in_range(clips: ClipDataset) -> None:
    mom = MixtureOfMixturesDataset(clips, MixITConfig(gain_db=[-6.0, 3.0]))
    levels = [level_db(ref.numpy()) for i in range(len(mom)) for ref in mom[(0, i)]]
    gains = np.array(levels) - clips.config.target_db  # clips are normalised to target_db RMS
    assert gains.min() >= -6.0 - 1e-3 and gains.max() <= 3.0 + 1e-3 and np.ptp(gains) > 1.0


def test_pairs_change_between_epochs(clips: ClipDataset) -> None:
    def pairs(epoch: int) -> set[frozenset[int]]:
        return {frozenset(clips.file_at(epoch, 2 * i + k) for k in (0, 1)) for i in range(4)}

    assert pairs(0) != pairs(1)


def test_pair_clips_for_streams() -> None:
    clips = [torch.full((5,), float(i)) for i in range(4)]
    batch = pair_clips(clips)
    assert batch["references"].shape == (2, 2, 5)
    torch.testing.assert_close(batch["mixture"][1], torch.full((5,), 5.0))
    with pytest.raises(ValueError, match="even"):
        pair_clips(clips[:3])
