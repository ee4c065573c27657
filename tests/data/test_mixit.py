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


def test_silent_prob_silences_the_second_mixture_of_a_keyed_share_of_pairs(
    clips: ClipDataset,
) -> None:
    """Over many epochs about silent_prob of the pairs have an all-zero second mixture (the
    MoM is then the first mixture alone); the draw is a pure function of the key."""
    mom = MixtureOfMixturesDataset(clips, MixITConfig(silent_prob=0.5))
    plain = MixtureOfMixturesDataset(clips)
    silent = 0
    keys = [(epoch, i) for epoch in range(16) for i in range(len(mom))]
    for key in keys:
        pair, reference = mom[key], plain[key]
        torch.testing.assert_close(pair[0], reference[0])
        if not pair[1].any():
            silent += 1
        else:
            torch.testing.assert_close(pair[1], reference[1])
        torch.testing.assert_close(mom[key], pair)  # the same key, the same draw
    assert 0.3 < silent / len(keys) < 0.7
    assert not MixtureOfMixturesDataset(clips, MixITConfig(silent_prob=0.0))[(0, 0)][1].eq(0).all()
    with pytest.raises(ValueError, match="silent_prob"):
        MixITConfig(silent_prob=1.5)
