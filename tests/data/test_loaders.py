"""The ready-made loaders the training engine calls: shapes from a DataConfig, and resuming
from a saved (epoch, step)."""

from pathlib import Path

import torch

from wildsep.data import (
    build_dynamic_mixing_loader,
    build_eval_loader,
    build_mixit_loader,
    load_data_config,
)


def _config(demo_corpus: Path, cache: Path):
    return load_data_config(
        {
            "batch_size": 2,
            "num_workers": 0,
            "corpus": {"source": str(demo_corpus / "unlabeled"), "cache_dir": str(cache)},
            "pools": {"source": str(demo_corpus / "pools"), "cache_dir": str(cache)},
            "clips": {"sample_rate": 8000, "duration": 0.5},
            "dynamic_mixing": {"items_per_epoch": 8},
        }
    )


def test_mixit_loader_resumes_where_it_left_off(demo_corpus: Path, tmp_path: Path) -> None:
    config = _config(demo_corpus, tmp_path / "cache")
    loader, _ = build_mixit_loader(config, rank=0, world_size=1)
    batches = [b for _, b in zip(range(2), loader, strict=False)]
    assert batches[0]["references"].shape == (2, 2, 4000)
    resumed, _ = build_mixit_loader(config, state={"epoch": 0, "step": 1})
    torch.testing.assert_close(next(iter(resumed))["mixture"], batches[1]["mixture"])


def test_dynamic_mixing_and_eval_loaders(demo_corpus: Path, tmp_path: Path) -> None:
    config = _config(demo_corpus, tmp_path / "cache")
    loader, sampler = build_dynamic_mixing_loader(config, rank=1, world_size=2)
    assert len(sampler) == 2  # 8 items per epoch over 2 ranks × batch 2
    for batch in loader:
        b, n, t = batch["references"].shape
        assert (b, t) == (2, 4000) and [len(p) for p in batch["prompts"]] == [n, n]
    evaluation = build_eval_loader(demo_corpus / "test" / "manifest.jsonl", 8000, batch_size=2)
    assert sum(len(b["classes"]) for b in evaluation) == 3


def test_a_corpus_smaller_than_a_batch_names_the_keys_or_wraps(demo_corpus, tmp_path):
    """8 files are 4 mixtures of mixtures: a batch of 8 is refused naming the keys to change;
    with drop_last=false the batch is filled by wrapping around the corpus."""
    import pytest

    config = _config(demo_corpus, tmp_path / "cache")
    config.batch_size = 8
    with pytest.raises(ValueError, match=r"data\.batch_size=4.*data\.drop_last=false"):
        build_mixit_loader(config)
    config.drop_last = False
    loader, sampler = build_mixit_loader(config)
    batch = next(iter(loader))["references"]
    assert batch.shape[0] == 8 and len(sampler) == 1
    torch.testing.assert_close(batch[4:], batch[:4])  # positions 4…7 wrap to 0…3
