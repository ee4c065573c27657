"""Dynamic mixing: prompts and references line up, each reference has its class's gain after
unit-RMS scaling, the mixture is their sum, backgrounds can be built from components, and
missing pools are clear errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from wildsep.data import (
    BackgroundConfig,
    ClipConfig,
    DynamicMixingConfig,
    DynamicMixingDataset,
    FixedNumSourcesBatchSampler,
    PromptConfig,
    build_corpus_index,
    collate_dynamic_mixing,
)
from wildsep.data.clips import level_db

CLIPS = ClipConfig(sample_rate=8000, duration=0.5)


@pytest.fixture(scope="module")
def pools(demo_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    return build_corpus_index(
        demo_corpus / "pools",
        class_from_folder=True,
        cache_dir=tmp_path_factory.mktemp("cache"),
        progress=False,
    )


def test_batches_have_fixed_n_and_references_carry_their_class_gain(pools) -> None:
    config = DynamicMixingConfig(items_per_epoch=24)
    dataset = DynamicMixingDataset(pools, config, CLIPS, seed=0)
    sampler = FixedNumSourcesBatchSampler(24, 4, config.num_sources, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_dynamic_mixing)
    gains = config.resolved().gain_db
    seen_n = set()
    for batch in loader:
        b, n, t = batch["references"].shape
        seen_n.add(n)
        assert (b, t) == (4, 4000) and batch["mixture"].shape == (4, 4000)
        assert all(len(p) == n for p in batch["prompts"])
        torch.testing.assert_close(batch["mixture"], batch["references"].sum(1))
        for refs, prompts in zip(batch["references"], batch["prompts"], strict=True):
            for ref, name in zip(refs, prompts, strict=True):
                low, high = gains[name]
                assert low - 1e-3 <= level_db(ref.numpy()) <= high + 1e-3, name
    assert seen_n == {2, 3, 4}


def test_item_is_reproducible_and_depends_on_its_key(pools) -> None:
    a = DynamicMixingDataset(pools, None, CLIPS, seed=1)
    b = DynamicMixingDataset(pools, None, CLIPS, seed=1)
    x, y = a[(3, 7, 3)], b[(3, 7, 3)]
    assert x["prompts"] == y["prompts"]
    torch.testing.assert_close(x["references"], y["references"], rtol=0, atol=0)
    assert not torch.equal(x["mixture"], a[(4, 7, 3)]["mixture"])
    assert len(a[(0, 1)]["prompts"]) in (2, 3, 4)  # a key without N draws one


def test_backgrounds_are_built_from_components_when_their_pool_is_missing(pools) -> None:
    without_sfxbg = pools.dataset.filter(lambda c: c != "sfxbg", input_columns="class")
    config = DynamicMixingConfig(
        prompts=PromptConfig(
            {"sfxbg": 1.0},
            {"sfxbg": {"speech": 1.0}, "speech": {"sfx": 1.0}, "sfx": {"speech": 1.0}},
        ),
        backgrounds={"sfxbg": BackgroundConfig(components=["sfx"], count=[2, 3])},
        items_per_epoch=4,
    )
    dataset = DynamicMixingDataset(without_sfxbg, config, CLIPS)
    item = dataset[(0, 0, 2)]
    assert item["prompts"] == ["sfxbg", "speech"]
    assert (
        np.isfinite(item["references"].numpy()).all()
        and level_db(item["references"][0].numpy()) > -21
    )


def test_missing_pools_and_unlabeled_indexes_are_clear_errors(pools, demo_corpus: Path) -> None:
    only_speech = pools.dataset.filter(lambda c: c == "speech", input_columns="class")
    with pytest.raises(ValueError, match="pool classes are \\['speech'\\]"):
        DynamicMixingDataset(only_speech, None, CLIPS)
    with pytest.raises(ValueError, match="class"):
        DynamicMixingDataset(pools.dataset.remove_columns("class"), None, CLIPS)
    with pytest.raises(ValueError, match="different numbers of sources"):
        dataset = DynamicMixingDataset(pools, None, CLIPS)
        collate_dynamic_mixing([dataset[(0, 0, 2)], dataset[(0, 1, 3)]])
