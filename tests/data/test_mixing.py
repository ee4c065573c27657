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
    from wildsep.data.mixing import active_rms

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
                low, high = gains[name]  # the default level: unit RMS over the active part
                level = 20 * np.log10(active_rms(ref.numpy()[None], CLIPS.sample_rate))
                assert low - 1e-3 <= level <= high + 1e-3, name
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


def test_active_rms_levels_a_short_event_by_its_active_part():
    """A 0.1 s burst in 1 s of silence: whole-crop RMS would boost it by 10 dB; active RMS is
    the burst's own RMS, computed here with a plain loop over 20 ms frames."""
    from wildsep.data.mixing import active_rms

    rng = np.random.default_rng(0)
    x = np.zeros((1, 8000), np.float32)
    x[0, 3000:3800] = 0.5 * rng.standard_normal(800)
    x[0, 5000:5160] = 1e-6  # a faint tail far below -40 dB: not active
    frames = [x[0, i : i + 160] for i in range(0, 8000, 160)]
    power = np.array([np.mean(f.astype(np.float64) ** 2) for f in frames])
    loud = [f for f, p in zip(frames, power, strict=True) if p >= power.max() * 1e-4]
    expected = np.sqrt(np.mean(np.concatenate(loud).astype(np.float64) ** 2))
    assert active_rms(x, 8000) == pytest.approx(expected, rel=1e-6)
    assert active_rms(np.zeros((2, 100), np.float32), 8000) == 0.0


def test_partial_sources_sound_on_one_span_at_unit_active_level(pools) -> None:
    """partial_prob=1 for every class and level='active_rms': every reference sounds on one
    span only (≥ partial_min of the crop; the clip may be silent in parts of it too) and its
    active part has its class gain."""
    from wildsep.data.mixing import active_rms, span_gate

    gate = span_gate(np.random.default_rng(3), 1000, 0.3, 10)
    on = np.flatnonzero(gate > 0)
    assert on[-1] - on[0] + 1 >= 300 and np.all(gate[on[0] : on[-1] + 1] > 0)
    assert np.all(gate[on[0] + 10 : on[-1] - 9] == 1.0) and gate.max() == 1.0
    silent_somewhere = 0

    classes = ["speech", "sfx", "drums"]
    config = DynamicMixingConfig(
        num_sources=[3],
        prompts=PromptConfig(
            initial=dict.fromkeys(classes, 1.0),
            transitions={c: dict.fromkeys(classes, 1.0) for c in classes},
        ),
        gain_db={c: [-6.0, -6.0] for c in classes},
        level="active_rms",
        partial_prob=dict.fromkeys(classes, 1.0),
        partial_min=0.3,
        items_per_epoch=8,
    )
    dataset = DynamicMixingDataset(pools, config, ClipConfig(sample_rate=8000, duration=1.0))
    for i in range(8):
        item = dataset[(0, i, 3)]
        for ref in item["references"].numpy():
            level = 20 * np.log10(active_rms(ref[None], 8000))
            assert level == pytest.approx(-6.0, abs=0.3)
            silent_somewhere += np.count_nonzero(ref == 0) > 0.05 * ref.size
    assert silent_somewhere > 12  # of 24 references, most are gated off somewhere
    plain = DynamicMixingDataset(pools, DynamicMixingConfig(items_per_epoch=8), CLIPS)
    again = DynamicMixingDataset(pools, DynamicMixingConfig(items_per_epoch=8), CLIPS)
    torch.testing.assert_close(plain[(0, 1, 2)]["mixture"], again[(0, 1, 2)]["mixture"])
