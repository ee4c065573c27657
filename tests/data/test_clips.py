"""Clip sampling and the batch samplers: items are pure functions of their keys, resuming at
step k reproduces an uninterrupted run, ranks get disjoint slices covering each epoch, and
silent crops are rejected."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from wildsep.data import (
    ClipConfig,
    ClipDataset,
    FixedNumSourcesBatchSampler,
    ResumableBatchSampler,
    build_corpus_index,
    collate_clips,
)
from wildsep.data.clips import level_db


@pytest.fixture(scope="module")
def unlabeled(demo_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("cache")
    return build_corpus_index(demo_corpus / "unlabeled", cache_dir=cache, progress=False)


CONFIG = ClipConfig(sample_rate=8000, duration=0.5)


def _run(dataset, sampler, steps: int, num_workers: int = 0) -> list[torch.Tensor]:
    loader = DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate_clips, num_workers=num_workers
    )
    batches = []
    while len(batches) < steps:
        for batch in loader:
            batches.append(batch)
            if len(batches) == steps:
                break
    return batches


def test_clips_from_mixed_formats_have_the_configured_shape_and_level(unlabeled) -> None:
    formats = {(r["sample_rate"], r["channels"]) for r in unlabeled.dataset}
    assert len(formats) >= 3, "the demo corpus should mix rates and channel counts"
    for mode, shape in [("mono", (4000,)), ("random", (4000,)), ("stereo", (2, 4000))]:
        clips = ClipDataset(unlabeled, ClipConfig(sample_rate=8000, duration=0.5, channels=mode))
        for i in range(len(clips)):
            clip = clips[(0, i)]
            assert clip.shape == shape and clip.dtype == torch.float32
            assert level_db(clip.numpy()) == pytest.approx(-20.0, abs=1e-3)  # rms normalised


def test_item_is_a_pure_function_of_seed_and_key(unlabeled) -> None:
    a, b = ClipDataset(unlabeled, CONFIG, seed=3), ClipDataset(unlabeled, CONFIG, seed=3)
    for key in [(0, 0), (0, 5), (2, 5)]:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert not torch.equal(a[(0, 5)], a[(1, 5)])
    assert not torch.equal(a[(0, 5)], ClipDataset(unlabeled, CONFIG, seed=4)[(0, 5)])


def test_each_epoch_visits_every_file_once_in_a_new_order(unlabeled) -> None:
    clips = ClipDataset(unlabeled, CONFIG, seed=0)
    orders = [[clips.file_at(epoch, p) for p in range(len(clips))] for epoch in range(3)]
    for order in orders:
        assert sorted(order) == list(range(len(clips)))
    assert orders[0] != orders[1] != orders[2]


def test_resume_at_step_k_sees_exactly_the_uninterrupted_batches(unlabeled) -> None:
    dataset = ClipDataset(unlabeled, CONFIG, seed=1)
    full = _run(dataset, ResumableBatchSampler(len(dataset), 2), steps=10)  # crosses epochs
    steps_per_epoch = len(dataset) // 2
    k = steps_per_epoch + 1  # inside the second epoch
    resumed_sampler = ResumableBatchSampler(len(dataset), 2)
    resumed_sampler.load_state_dict({"epoch": 1, "step": 1})
    resumed = _run(dataset, resumed_sampler, steps=10 - k)
    for x, y in zip(full[k:], resumed, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_worker_processes_do_not_change_the_batches(unlabeled) -> None:
    dataset = ClipDataset(unlabeled, CONFIG, seed=2)
    serial = _run(dataset, ResumableBatchSampler(len(dataset), 2), steps=4)
    parallel = _run(dataset, ResumableBatchSampler(len(dataset), 2), steps=4, num_workers=2)
    for x, y in zip(serial, parallel, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("drop_last", [True, False])
def test_rank_shards_are_disjoint_and_cover_the_epoch(world_size: int, drop_last: bool) -> None:
    n, batch = 23, 2
    per_rank = []
    for rank in range(world_size):
        sampler = ResumableBatchSampler(
            n, batch, rank=rank, world_size=world_size, drop_last=drop_last
        )
        per_rank.append([p for keys in sampler for _, p in keys])
    lengths = {len(p) for p in per_rank}
    assert len(lengths) == 1, "every rank must run the same number of steps"
    seen = [p for positions in per_rank for p in positions]
    global_batch = batch * world_size
    if drop_last:
        assert len(seen) == len(set(seen)) == n // global_batch * global_batch
    else:
        assert set(seen) == set(range(n))
        assert len(seen) - n < global_batch  # only the last batch wraps around


def test_sampler_advances_epochs_and_keeps_a_resumed_position() -> None:
    sampler = ResumableBatchSampler(8, 2)
    assert [keys[0] for keys in sampler] == [(0, 0), (0, 2), (0, 4), (0, 6)]
    assert next(iter(sampler))[0] == (1, 0)
    sampler.load_state_dict({"epoch": 4, "step": 2})
    sampler.set_epoch(4)  # the training loop announcing the epoch it resumes in
    assert next(iter(sampler))[0] == (4, 4)
    with pytest.raises(ValueError, match="rank"):
        ResumableBatchSampler(8, 2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="cannot fill one batch"):
        ResumableBatchSampler(3, 2, world_size=2)


def test_num_sources_is_fixed_within_a_batch_and_shared_by_ranks() -> None:
    samplers = [
        FixedNumSourcesBatchSampler(400, 2, [2, 3, 4], [1, 0, 3], seed=5, rank=r, world_size=2)
        for r in range(2)
    ]
    batches = [list(s) for s in samplers]
    counts = {2: 0, 3: 0, 4: 0}
    for b0, b1 in zip(*batches, strict=True):
        ns = {key[2] for key in b0 + b1}
        assert len(ns) == 1
        counts[ns.pop()] += 1
    assert counts[3] == 0 and 0.6 < counts[4] / (counts[2] + counts[4]) < 0.9


def test_silent_crops_are_rejected(tmp_path: Path) -> None:
    x = np.zeros(16000 * 4, np.float32)
    x[-8000:] = 0.1 * np.random.default_rng(0).standard_normal(8000)  # loud last 0.5 s only
    sf.write(tmp_path / "mostly_silent.wav", x, 16000)
    index = build_corpus_index(tmp_path, cache_dir=tmp_path.parent / "cache", progress=False)
    strict = ClipDataset(index, ClipConfig(duration=0.25, max_attempts=200, normalize="none"))
    loose = ClipDataset(index, ClipConfig(duration=0.25, silence_threshold_db=-np.inf))
    assert all(level_db(strict[(epoch, 0)].numpy()) > -40 for epoch in range(10))
    assert any(level_db(loose[(epoch, 0)].numpy()) == -np.inf for epoch in range(10))


def test_a_file_that_disappears_after_indexing_does_not_stop_the_run(
    tmp_path: Path, write_noise, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(3):
        write_noise(tmp_path / "c" / f"{i}.wav")
    index = build_corpus_index(tmp_path / "c", cache_dir=tmp_path / "cache", progress=False)
    (tmp_path / "c" / "1.wav").unlink()
    clips = ClipDataset(index, ClipConfig(duration=0.25), shuffle=False)
    with caplog.at_level("WARNING"):
        clip = clips[(0, 1)]  # position 1 is the deleted file; another one stands in
    assert clip.shape == (4000,) and level_db(clip.numpy()) == pytest.approx(-20.0, abs=1e-3)
    assert "1.wav" in caplog.text
