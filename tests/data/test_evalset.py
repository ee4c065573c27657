"""Fixed evaluation sets load with their references and classes, resample, and pad in batches;
malformed manifests are clear errors."""

import json
from pathlib import Path

import pytest
import torch

from wildsep.data import EvalSetDataset, build_eval_loader


def test_demo_sets_load_with_mixture_equal_to_sum(demo_corpus: Path) -> None:
    dataset = EvalSetDataset(demo_corpus / "valid" / "manifest.jsonl", 16000)
    for item in dataset:
        assert item["references"].shape[0] == len(item["classes"])
        torch.testing.assert_close(item["mixture"], item["references"].sum(0), atol=1e-6, rtol=0)
    assert EvalSetDataset(demo_corpus / "test" / "manifest.jsonl", 8000)[0]["mixture"].shape == (
        16000,  # 2 s at 8 kHz
    )


def test_batches_pad_sources_and_keep_classes(demo_corpus: Path) -> None:
    loader = build_eval_loader(demo_corpus / "valid" / "manifest.jsonl", 16000, batch_size=3)
    batch = next(iter(loader))
    counts = [len(c) for c in batch["classes"]]
    assert batch["references"].shape == (3, max(counts), 32000)
    for b, n in enumerate(counts):
        assert batch["references"][b, n:].abs().sum() == 0
    assert batch["lengths"].tolist() == [32000] * 3 and len(batch["names"]) == 3


def test_manifest_without_mixture_sums_references(demo_corpus: Path, tmp_path: Path) -> None:
    row = json.loads((demo_corpus / "valid" / "manifest.jsonl").read_text().splitlines()[0])
    refs = [str(demo_corpus / "valid" / p) for p in row["references"]]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"references": refs, "classes": row["classes"]}) + "\n")
    item = EvalSetDataset(manifest, 16000)[0]
    torch.testing.assert_close(item["mixture"], item["references"].sum(0))


def test_malformed_manifests_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.jsonl"):
        EvalSetDataset(tmp_path / "nope.jsonl", 16000)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"references": ["a.wav"], "classes": []}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: needs"):
        EvalSetDataset(bad, 16000)
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match="not valid JSON"):
        EvalSetDataset(bad, 16000)


def test_single_source_set_from_class_folders(tmp_path, write_noise):
    """Balanced per class, one reference each, mixture == reference, cropped to length at
    -20 dBFS, silent files skipped, nothing written next to the sources."""
    import numpy as np
    import soundfile as sf

    from wildsep.data.evalset import write_single_source_set

    sources = tmp_path / "sources"
    for c in ("speech", "sfx"):
        for i in range(3):
            write_noise(sources / c / f"{c}_{i}.wav", seconds=1.5 if i else 0.3, sr=8000)
    sf.write(sources / "sfx" / "silent.wav", np.zeros(8000, np.float32), 8000)
    before = sorted(p.name for p in sources.rglob("*"))
    manifest = write_single_source_set(
        sources, tmp_path / "set", per_class=3, seconds=1.0, sample_rate=8000
    )
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert sorted(r["classes"][0] for r in rows) == ["sfx"] * 3 + ["speech"] * 3
    assert all(r["source"] != "sfx/silent.wav" for r in rows)
    data = EvalSetDataset(manifest, 8000)
    for i in range(len(data)):
        item = data[i]
        assert item["references"].shape == (1, 8000)
        torch.testing.assert_close(item["mixture"], item["references"][0])
        rms = item["references"][0].pow(2).mean().sqrt()
        assert 20 * torch.log10(rms) == pytest.approx(-20.0, abs=0.1)
    assert sorted(p.name for p in sources.rglob("*")) == before
    with pytest.raises(FileExistsError, match="not empty"):
        write_single_source_set(sources, tmp_path / "set")
