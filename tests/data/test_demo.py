"""The demo corpus has the documented layout, is deterministic and is valid audio."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wildsep.data import demo


def test_layout_matches_manifests(demo_corpus: Path) -> None:
    size = demo.SIZES["small"]
    with open(demo_corpus / "pools.csv") as f:
        pools = list(csv.DictReader(f))
    assert len(pools) == size.pool_clips_per_class * len(demo.CLASSES)
    assert {row["class"] for row in pools} == set(demo.CLASSES)
    for row in pools:
        assert Path(row["path"]).parts[:2] == ("pools", row["class"])
        assert (demo_corpus / row["path"]).is_file()
    with open(demo_corpus / "unlabeled.csv") as f:
        unlabeled = [row["path"] for row in csv.DictReader(f)]
    assert sorted(unlabeled) == sorted(
        str(p.relative_to(demo_corpus)) for p in (demo_corpus / "unlabeled").iterdir()
    )
    infos = [sf.info(demo_corpus / p) for p in unlabeled]
    assert {i.samplerate for i in infos} >= {16000, 44100}, "resampling paths need other rates"
    assert {i.channels for i in infos} == {1, 2}
    assert {Path(p).suffix for p in unlabeled} >= {".wav", ".flac"}


@pytest.mark.parametrize("split", ["valid", "test"])
def test_eval_mixture_is_sum_of_references(demo_corpus: Path, split: str) -> None:
    rows = [json.loads(line) for line in open(demo_corpus / split / "manifest.jsonl")]
    assert len(rows) == demo.SIZES["small"].eval_mixtures
    for row in rows:
        mixture, sr = sf.read(demo_corpus / split / row["mixture"], dtype="float32")
        refs = [sf.read(demo_corpus / split / p, dtype="float32")[0] for p in row["references"]]
        assert sr == 16000 and 2 <= len(refs) <= 4 and len(row["classes"]) == len(refs)
        assert set(row["classes"]) <= set(demo.CLASSES)
        np.testing.assert_allclose(mixture, np.sum(refs, axis=0), atol=1e-6)
        assert all(np.sqrt(np.mean(r**2)) > 1e-4 for r in refs)


def test_audio_content_is_deterministic(demo_corpus: Path, tmp_path: Path) -> None:
    again = demo.generate(tmp_path / "again", size="small", num_workers=1)
    for path in sorted(demo_corpus.rglob("*.wav")) + sorted(demo_corpus.rglob("*.flac")):
        a = sf.read(path)[0]
        b = sf.read(again / path.relative_to(demo_corpus))[0]
        np.testing.assert_array_equal(a, b, err_msg=str(path))


def test_second_call_is_a_no_op_and_foreign_folders_are_protected(
    demo_corpus: Path, tmp_path: Path
) -> None:
    stamp = (demo_corpus / "demo.json").stat().st_mtime_ns
    demo.generate(demo_corpus, size="small")
    assert (demo_corpus / "demo.json").stat().st_mtime_ns == stamp
    (tmp_path / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not empty"):
        demo.generate(tmp_path, size="small")


@pytest.mark.parametrize("name", demo.CLASSES)
@pytest.mark.parametrize("sr", [8000, 16000, 44100])
def test_synthesisers_return_finite_float32_of_requested_length(name: str, sr: int) -> None:
    x = demo.synthesise(name, np.random.default_rng(3), sr, 1.5)
    assert x.dtype == np.float32 and x.shape == (round(1.5 * sr),)
    assert np.isfinite(x).all() and 0.49 < np.abs(x).max() <= 0.5 + 1e-6


def test_unknown_class_and_size_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="choose from"):
        demo.synthesise("kazoo", np.random.default_rng(0), 16000, 1.0)
    with pytest.raises(ValueError, match="small"):
        demo.generate(tmp_path / "x", size="huge")


def test_evaluation_splits_have_single_source_sets(demo_corpus):
    """valid/ and test/ also list single-source examples (FUSS SS), mixture == reference."""
    import json

    import numpy as np
    import soundfile as sf

    for split in ("valid", "test"):
        rows = [
            json.loads(x) for x in (demo_corpus / split / "single.jsonl").read_text().splitlines()
        ]
        assert len(rows) == 2 and all(len(r["references"]) == 1 for r in rows)
        for row in rows:
            mixture, _ = sf.read(demo_corpus / split / row["mixture"])
            reference, _ = sf.read(demo_corpus / split / row["references"][0])
            assert np.array_equal(mixture, reference) and np.abs(reference).max() > 0.1
