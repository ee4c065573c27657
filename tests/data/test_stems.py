"""Fixed-stem batches: a MUSDB-layout folder cropped at one offset per track, pool stems put in
stem order with each class once, and the Demucs augmentations applied by the recipe."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wildsep.config import load_config
from wildsep.data import (
    ClipConfig,
    DataConfig,
    DynamicMixingDataset,
    StemsFolderConfig,
    StemsFolderDataset,
    build_corpus_index,
    build_stems_loader,
)
from wildsep.data.stems import find_tracks, stems_mixing_config

STEMS = ("drums", "bass", "vocals", "other")
RATE = 8000
ROOT = Path(__file__).resolve().parents[2]


def stem_signal(track: int, stem: int, frames: int) -> np.ndarray:
    """(frames, 2): channel 0 a ramp unique to (track, stem, sample), channel 1 its negative."""
    left = (np.arange(frames) / 100_000 + track + 100 * stem).astype(np.float32)
    return np.stack([left, -left], 1)


def write_tree(root: Path, lengths: list[int]) -> Path:
    for track, frames in enumerate(lengths):
        folder = root / f"Song {track}"
        folder.mkdir(parents=True)
        for stem, name in enumerate(STEMS):
            sf.write(folder / f"{name}.wav", stem_signal(track, stem, frames), RATE, "FLOAT")
        sf.write(folder / "mixture.wav", np.zeros((frames, 2), np.float32), RATE, "FLOAT")
    return root


def test_stems_folder_crops_every_stem_of_a_track_at_one_offset(tmp_path):
    root = write_tree(tmp_path / "train", [RATE, 2 * RATE, 3 * RATE])
    clips = ClipConfig(sample_rate=RATE, duration=0.5, channels="stereo")
    dataset = StemsFolderDataset(StemsFolderConfig(str(root)), STEMS, clips, seed=3)
    assert len(dataset) == 3
    seen, offsets = [], set()
    for position in range(3):
        item = dataset[(0, position)]
        refs = item["references"]
        assert refs.shape == (4, 2, 4000)
        torch.testing.assert_close(item["mixture"], refs.sum(0))
        track = int(np.floor(refs[0, 0, 0].item()))  # drums: stem 0, value track + t/10⁵
        start = round((refs[0, 0, 0].item() - track) * 100_000)
        frames = (track + 1) * RATE
        for stem in range(4):
            expected = stem_signal(track, stem, frames)[start : start + 4000].T
            np.testing.assert_array_equal(refs[stem].numpy(), expected)
        seen.append(track)
        offsets.add(start)
    assert sorted(seen) == [0, 1, 2]  # one epoch visits every track once
    assert len(offsets) > 1
    again = StemsFolderDataset(StemsFolderConfig(str(root)), STEMS, clips, seed=3)[(0, 1)]
    torch.testing.assert_close(again["references"], dataset[(0, 1)]["references"])


def test_a_track_shorter_than_the_crop_is_zero_padded_around_it(tmp_path):
    root = write_tree(tmp_path / "train", [RATE // 4])
    clips = ClipConfig(sample_rate=RATE, duration=0.5, channels="stereo")
    refs = StemsFolderDataset(StemsFolderConfig(str(root)), STEMS, clips)[(0, 0)]["references"]
    sounding = (refs[1, 0] != 0).nonzero().flatten()  # bass: never exactly 0
    assert len(sounding) == RATE // 4
    np.testing.assert_array_equal(refs[1, :, sounding].numpy(), stem_signal(0, 1, RATE // 4).T)


def test_a_track_without_a_stem_is_a_one_line_error(tmp_path):
    root = write_tree(tmp_path / "train", [RATE])
    (root / "Song 0" / "vocals.wav").unlink()
    with pytest.raises(ValueError, match=r"Song 0 lacks \['vocals.wav'\]"):
        find_tracks(root, STEMS)
    with pytest.raises(ValueError, match="does not exist"):
        find_tracks(tmp_path / "nowhere", STEMS)


def test_pool_stems_have_each_class_once_in_the_stems_order(demo_corpus, tmp_path):
    data = DataConfig(batch_size=3, num_workers=0, seed=5)
    data.pools.source, data.pools.cache_dir = str(demo_corpus / "pools"), str(tmp_path)
    data.clips = ClipConfig(sample_rate=RATE, duration=0.25)
    order = ("vocals", "drums", "other", "bass")  # not the pools' alphabetical order
    pools = build_corpus_index(data.pools)
    loader, sampler = build_stems_loader(data, order, pools=pools)
    raw = DynamicMixingDataset(
        pools, stems_mixing_config(data.dynamic_mixing, order), data.clips, seed=5
    )
    for step, batch in zip(range(2), loader, strict=False):
        assert batch["references"].shape == (3, 4, 2000)
        torch.testing.assert_close(batch["mixture"], batch["references"].sum(1))
        for b, key in enumerate(sampler.batch(0, step)):
            item = raw[key]
            assert sorted(item["prompts"]) == sorted(order)  # every stem class exactly once
            for s, name in enumerate(order):
                expected = item["references"][item["prompts"].index(name)]
                torch.testing.assert_close(batch["references"][b, s], expected)


@pytest.mark.parametrize(
    "augment,check",
    [
        ("flip_sign_prob=1.0", lambda new, old: torch.equal(new, -old)),
        ("scale=[0.5,0.5]", lambda new, old: torch.allclose(new, 0.5 * old)),
        (
            "remix_group_size=3",  # each stem column permuted within the group of 3
            lambda new, old: (
                not torch.equal(new, old)
                and all(
                    sorted(new[:, s].sum(-1).tolist())
                    == pytest.approx(sorted(old[:, s].sum(-1).tolist()))
                    for s in range(4)
                )
            ),
        ),
        ("shift_seconds=0.05", lambda new, old: new.shape[-1] == old.shape[-1] - 400),
    ],
)
def test_the_recipe_augments_stems_before_mixing(augment, check, demo_corpus, tmp_path):
    from pretrain.config import PretrainConfig
    from pretrain.run import training_batches

    def batch(*extra):
        config = load_config(
            PretrainConfig,
            ROOT / "configs" / "demo_demucs.yaml",
            [
                f"data.pools.source={demo_corpus / 'pools'}",
                f"data.pools.cache_dir={tmp_path}",
                "data.batch_size=3",
                "data.num_workers=0",
                "data.clips.duration=0.25",
                "data.augment.shift_seconds=0",
                "data.augment.flip_sign_prob=0",
                "data.augment.scale=null",
                "data.augment.remix_group_size=0",
                *extra,
            ],
        )
        pools = build_corpus_index(config.data.pools)
        return next(training_batches(config, None, 0, 1, pools)(1))

    plain, augmented = batch(), batch(f"data.augment.{augment}")
    assert check(augmented["references"], plain["references"])
    torch.testing.assert_close(augmented["mixture"], augmented["references"].sum(1))
