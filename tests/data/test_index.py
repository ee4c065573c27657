"""Corpus indexing: bad files are reported (never indexed), good ones indexed, the cache
avoids rescans, manifests of every kind load, and user mistakes give clear errors."""

import csv
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf

from wildsep.data import index as index_module
from wildsep.data.index import build_corpus_index


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture
def messy_folder(tmp_path: Path, write_noise) -> tuple[Path, set[str], dict[str, str]]:
    """Good files in three formats plus every kind of bad file; returns (root, good, bad)."""
    root = tmp_path / "corpus"
    good = {
        write_noise(root / "a.wav", subtype="PCM_16"),
        write_noise(root / "sub" / "b.flac", sr=44100, channels=2),
        write_noise(root / "sub" / "deeper" / "c.ogg", sr=22050),
        write_noise(root / "d.wav", sr=48000, channels=2, subtype="FLOAT"),
    }
    full = write_noise(tmp_path / "full.wav", seconds=1.0).read_bytes()
    (root / "truncated.wav").write_bytes(full[: len(full) // 2])
    (root / "zero.wav").write_bytes(b"")
    (root / "text.wav").write_text("this is not audio\n" * 20)
    nan = np.full((8000, 1), 0.1, np.float32)
    nan[100:200] = np.nan
    sf.write(root / "nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(root / "inf.wav", np.full((800, 1), np.inf, np.float32), 16000, subtype="FLOAT")
    sf.write(root / "silent.wav", np.zeros((8000, 1), np.float32), 16000)
    (root / "video.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A ")
    (root / "README.txt").write_text("not a candidate: ignored, not reported")
    (root / ".hidden.wav").write_bytes(b"")  # hidden files are not candidates either
    bad = {
        "truncated.wav": "truncated",
        "zero.wav": "empty file",
        "text.wav": "unreadable",
        "nan.wav": "non-finite samples",
        "inf.wav": "non-finite samples",
        "silent.wav": "silent",
        "video.m4a": "unsupported format",
    }
    return root, {str(p) for p in good}, bad


def test_scan_reports_exactly_the_bad_files_and_indexes_exactly_the_good(
    messy_folder: tuple[Path, set[str], dict[str, str]], cache_dir: Path
) -> None:
    root, good, bad = messy_folder
    before = _snapshot(root)
    index = build_corpus_index(root, cache_dir=cache_dir, progress=False)
    assert set(index.dataset["path"]) == good
    with open(index.report_path) as f:
        reported = {Path(row["path"]).name: row["reason"] for row in csv.DictReader(f)}
    assert set(reported) == set(bad)
    for name, reason in bad.items():
        assert reported[name].startswith(reason), (name, reported[name])
    assert sum(index.skipped.values()) == len(bad)
    assert _snapshot(root) == before, "indexing wrote into the corpus"
    assert not index.report_path.is_relative_to(root)


def test_index_columns_describe_each_file(
    messy_folder: tuple[Path, set[str], dict[str, str]], cache_dir: Path
) -> None:
    root, _, _ = messy_folder
    rows = {Path(r["path"]).name: r for r in build_corpus_index(root, cache_dir=cache_dir).dataset}
    assert rows["b.flac"]["sample_rate"] == 44100 and rows["b.flac"]["channels"] == 2
    assert rows["b.flac"]["frames"] == 22050 and rows["b.flac"]["duration"] == pytest.approx(0.5)
    assert rows["c.ogg"]["sample_rate"] == 22050
    assert rows["a.wav"]["rms_db"] == pytest.approx(-20.0, abs=0.5)


def test_second_run_uses_the_cache_and_a_changed_corpus_is_rescanned(
    write_noise, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "corpus"
    for i in range(3):
        write_noise(root / f"{i}.wav")
    first = build_corpus_index(root, cache_dir=cache_dir, progress=False)

    def no_scanning(*args, **kwargs):
        raise AssertionError("an unchanged corpus was rescanned")

    monkeypatch.setattr(index_module, "check_batch", no_scanning)
    again = build_corpus_index(root, cache_dir=cache_dir, progress=False)
    assert again.cache_path == first.cache_path and len(again) == 3
    monkeypatch.undo()
    write_noise(root / "new.wav")
    assert len(build_corpus_index(root, cache_dir=cache_dir, progress=False)) == 4


def test_parallel_scan_matches_serial(
    messy_folder: tuple[Path, set[str], dict[str, str]],
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, good, _ = messy_folder
    monkeypatch.setattr(index_module, "_SMALL_CORPUS", 0)  # force worker processes
    index = build_corpus_index(root, cache_dir=cache_dir, num_proc=2, progress=False)
    assert set(index.dataset["path"]) == good


def test_labeled_pools_from_folders_and_manifests_agree(demo_corpus: Path, cache_dir: Path) -> None:
    from_folders = build_corpus_index(
        demo_corpus / "pools", class_from_folder=True, cache_dir=cache_dir, progress=False
    )
    from_csv = build_corpus_index(demo_corpus / "pools.csv", cache_dir=cache_dir, progress=False)
    as_pairs = [{(r["path"], r["class"]) for r in ix.dataset} for ix in (from_folders, from_csv)]
    assert as_pairs[0] == as_pairs[1]
    assert from_csv.classes == sorted(
        ["speech", "sfx", "sfxbg", "drums", "bass", "vocals", "other", "musicbg"]
    )


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "tsv"])
def test_manifest_formats_with_relative_paths_and_extra_columns(
    write_noise, tmp_path: Path, cache_dir: Path, kind: str
) -> None:
    write_noise(tmp_path / "audio" / "x.wav")
    write_noise(tmp_path / "audio" / "y.wav")
    rows = [
        {"file": "audio/x.wav", "label": "speech", "labels": "speech|dog"},
        {"file": "audio/y.wav", "label": "sfx", "labels": "dog"},
        {"file": "audio/missing.wav", "label": "sfx", "labels": ""},
    ]
    manifest = tmp_path / f"list.{kind}"
    if kind == "jsonl":
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif kind == "parquet":
        datasets.Dataset.from_list(rows).to_parquet(str(manifest))
    else:
        manifest.write_text(
            "file\tlabel\tlabels\n" + "".join("\t".join(r.values()) + "\n" for r in rows)
        )
    index = build_corpus_index(
        manifest, path_column="file", class_column="label", cache_dir=cache_dir, progress=False
    )
    got = {Path(r["path"]).name: (r["class"], r["labels"]) for r in index.dataset}
    assert got == {"x.wav": ("speech", "speech|dog"), "y.wav": ("sfx", "dog")}
    assert index.skipped == {"unreadable": 1}


def test_file_outside_class_folders_is_reported(
    write_noise, tmp_path: Path, cache_dir: Path
) -> None:
    write_noise(tmp_path / "pools" / "speech" / "a.wav")
    write_noise(tmp_path / "pools" / "stray.wav")
    index = build_corpus_index(
        tmp_path / "pools", class_from_folder=True, cache_dir=cache_dir, progress=False
    )
    assert index.classes == ["speech"] and index.skipped == {"no class": 1}


def test_user_mistakes_are_clear_errors(tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_corpus_index(tmp_path / "nowhere", cache_dir=cache_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no audio files found under .*empty"):
        build_corpus_index(tmp_path / "empty", cache_dir=cache_dir)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "z.wav").write_bytes(b"")
    with pytest.raises(ValueError, match=r"no usable audio in .*bad.*empty file"):
        build_corpus_index(tmp_path / "bad", cache_dir=cache_dir, progress=False)
    manifest = tmp_path / "m.csv"
    manifest.write_text("filename\nz.wav\n")
    with pytest.raises(ValueError, match=r"no path column 'path'.*\['filename'\]"):
        build_corpus_index(manifest, cache_dir=cache_dir)
    with pytest.raises(ValueError, match="valid:"):
        build_corpus_index(tmp_path / "bad", cache_dir=cache_dir, clas_from_folder=True)
    with pytest.raises(ValueError, match="must not be inside the corpus"):
        build_corpus_index(tmp_path, cache_dir=tmp_path / "cache")


def test_header_only_mode_skips_decoding(write_noise, tmp_path: Path, cache_dir: Path) -> None:
    write_noise(tmp_path / "c" / "a.wav")
    sf.write(tmp_path / "c" / "silent.wav", np.zeros((800, 1), np.float32), 16000)
    quick = build_corpus_index(
        tmp_path / "c", validate_audio=False, cache_dir=cache_dir, progress=False
    )
    assert len(quick) == 2 and all(np.isinf(quick.dataset["peak_db"]))


def test_parallel_scan_of_a_long_manifest_keeps_order_and_reports_bad_rows(tmp_path: Path) -> None:
    """300 rows (above the size where worker processes start) cycling over good, silent and
    missing files: two processes give the rows of one, in manifest order."""
    import csv

    import numpy as np
    import soundfile as sf

    from wildsep.data import build_corpus_index

    good = []
    for i in range(3):
        path = tmp_path / f"g{i}.wav"
        sf.write(path, np.full(800 * (i + 1), 0.1, np.float32), 8000)
        good.append(path.name)
    sf.write(tmp_path / "silent.wav", np.zeros(800, np.float32), 8000)
    names = [[*good, "silent.wav", "missing.wav"][i % 5] for i in range(300)]
    with open(tmp_path / "m.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path", "n"], *[[name, i] for i, name in enumerate(names)]])
    indexes = [
        build_corpus_index(
            tmp_path / "m.csv", num_proc=n, cache_dir=tmp_path / f"c{n}", progress=False
        )
        for n in (1, 2)
    ]
    for index in indexes:
        rows = index.dataset.select_columns(["path", "n", "frames"]).to_list()
        assert [r["n"] for r in rows] == [i for i in range(300) if i % 5 < 3]
        assert [r["frames"] for r in rows] == [800 * (r["n"] % 5 + 1) for r in rows]
        assert index.skipped == {"silent": 60, "unreadable": 60}
        assert len(index.report_path.read_text().splitlines()) == 1 + 120
