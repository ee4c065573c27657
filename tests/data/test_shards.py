"""Tar shards: every member read exactly once per epoch across ranks and workers, resuming at
the exact next member, bad members and truncated shards reported and skipped, and shards
written from a corpus folder round-trip."""

import io
import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wildsep.data import ClipConfig
from wildsep.data.shards import (
    ShardClipDataset,
    ShardLoader,
    iter_shard,
    list_shards,
    main,
    write_shards,
)

RATE = 8000
CLIP = ClipConfig(sample_rate=RATE, duration=0.05, normalize="none", silence_threshold_db=-80)


def wav_bytes(value: float, seconds: float = 0.1) -> bytes:
    """A constant signal: any crop of it has mean `value`, which names the member."""
    out = io.BytesIO()
    sf.write(out, np.full(int(RATE * seconds), value, np.float32), RATE, format="WAV")
    return out.getvalue()


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_shards(
    root: Path, sizes: list[int], bad: dict[tuple[int, int], bytes] | None = None
) -> list[int]:
    """Shards shard-00000.tar ... with `sizes[s]` samples; sample j of shard s is a constant
    (s + 1) / 100 + j / 10000 with a .cls and .json sidecar. `bad` replaces some samples'
    audio. Returns the ids (in 1e-4 units) of the good samples."""
    ids, bad = [], bad or {}
    root.mkdir(parents=True, exist_ok=True)
    for s, size in enumerate(sizes):
        with tarfile.open(root / f"shard-{s:05d}.tar", "w") as tar:
            for j in range(size):
                value = (s + 1) / 100 + j / 10000
                key = f"s{s}_{j:04d}"
                add(tar, f"{key}.wav", bad.get((s, j), wav_bytes(value)))
                add(tar, f"{key}.cls", b"speech\n")
                add(tar, f"{key}.json", json.dumps({"shard": s, "sample": j}).encode())
                if (s, j) not in bad:
                    ids.append(round(value * 10000))
    return ids


def ids_of(batch: torch.Tensor) -> list[int]:
    return [round(float(clip.mean()) * 10000) for clip in batch]


def test_rank_and_worker_split_reads_every_member_once_per_epoch(tmp_path: Path) -> None:
    expected = make_shards(tmp_path / "shards", [3, 1, 5, 2, 4, 2, 3])
    for epoch in range(2):
        seen = []
        for rank in range(2):
            dataset = ShardClipDataset(
                tmp_path / "shards", CLIP, rank=rank, world_size=2, report_path=tmp_path / "r"
            )
            dataset.set_epoch(epoch)
            loader = ShardLoader(dataset, batch_size=2, num_workers=2)
            seen += [i for batch in loader for i in ids_of(batch)]
        assert sorted(seen) == sorted(expected)
    orders = [ShardClipDataset(tmp_path / "shards").shards_for(e, 0, 1) for e in range(3)]
    assert len({tuple(o) for o in orders}) > 1  # a new shard order every epoch


def interrupted_runs(make_loader, full_length: int):
    """(batches before the stop, batches of a loader resumed from the state at the stop)."""
    for stop in range(1, full_length):
        first = make_loader()
        head = []
        for batch in first:
            head.append(ids_of(batch))
            if len(head) == stop:
                break
        state = json.loads(json.dumps(first.state_dict()))  # as a checkpoint would hold it
        resumed = make_loader()
        resumed.load_state_dict(state)
        yield head, [ids_of(b) for b in resumed]


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker")
@pytest.mark.parametrize("num_workers", [0, 2, 3])
def test_resume_continues_at_the_exact_next_member(tmp_path: Path, num_workers: int) -> None:
    bad = {(1, 1): b"RIFF not really a wav", (2, 0): wav_bytes(0.0)}  # corrupt, silent
    make_shards(tmp_path / "shards", [4, 3, 6, 1, 2], bad)

    def loader() -> ShardLoader:
        dataset = ShardClipDataset(tmp_path / "shards", CLIP, seed=3, report_path=tmp_path / "r")
        return ShardLoader(dataset, batch_size=2, num_workers=num_workers)

    full = [ids_of(b) for b in loader()]
    assert sum(map(len, full)) == 14
    for head, rest in interrupted_runs(loader, len(full)):
        assert head + rest == full, len(head)


def test_resume_with_a_shuffle_buffer_repeats_nothing_and_skips_at_most_the_buffer(
    tmp_path: Path,
) -> None:
    expected = make_shards(tmp_path / "shards", [5, 4, 6])

    def loader() -> ShardLoader:
        dataset = ShardClipDataset(
            tmp_path / "shards", CLIP, shuffle_buffer=3, report_path=tmp_path / "r"
        )
        return ShardLoader(dataset, batch_size=2, num_workers=2)

    full = [i for b in loader() for i in ids_of(b)]
    assert sorted(full) == sorted(expected) and full != sorted(full)
    for head, rest in interrupted_runs(loader, 7):
        seen = [i for b in head + rest for i in b]
        assert len(seen) == len(set(seen)) >= len(expected) - 2 * 3


def test_a_resumed_loader_goes_on_to_the_next_epoch(tmp_path: Path) -> None:
    make_shards(tmp_path / "shards", [2, 2, 2])
    dataset = ShardClipDataset(tmp_path / "shards", CLIP, report_path=tmp_path / "r")
    loader = ShardLoader(dataset, batch_size=1)
    epoch0, epoch1 = [ids_of(b) for b in loader], [ids_of(b) for b in loader]
    assert sorted(epoch0) == sorted(epoch1) and dataset.epoch == 2
    fresh = ShardLoader(ShardClipDataset(tmp_path / "shards", CLIP, report_path=tmp_path / "r"), 1)
    it = iter(fresh)
    next(it)
    state = fresh.state_dict()
    other = ShardLoader(ShardClipDataset(tmp_path / "shards", CLIP, report_path=tmp_path / "r"), 1)
    other.load_state_dict(state)
    assert [ids_of(b) for b in other] == epoch0[1:]
    assert [ids_of(b) for b in other] == epoch1  # then epoch 1 from its start


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    make_shards(tmp_path / "shards", [2, 2])
    state = ShardLoader(ShardClipDataset(tmp_path / "shards", CLIP), 1, num_workers=2).state_dict()
    with pytest.raises(ValueError, match="num_workers: saved 2, now 0"):
        ShardLoader(ShardClipDataset(tmp_path / "shards", CLIP), 1).load_state_dict(state)


def test_corrupt_members_and_truncated_shards_are_reported_and_skipped(tmp_path: Path) -> None:
    make_shards(tmp_path / "shards", [3, 4], {(0, 1): b"\x00" * 100})
    with tarfile.open(tmp_path / "shards" / "shard-00002.tar", "w") as tar:
        add(tar, "x_0.wav", wav_bytes(0.5))
        add(tar, "x_0.json", b"{not json")
    cut = tmp_path / "shards" / "shard-00001.tar"
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) * 3 // 5])  # truncated inside sample 2 of 4
    report = tmp_path / "report.csv"
    dataset = ShardClipDataset(tmp_path / "shards", CLIP, report_path=report)
    seen = sorted(i for batch in ShardLoader(dataset, batch_size=3) for i in ids_of(batch))
    # Shard 0 without its corrupt sample 1; shard 1 up to the sample the cut falls in; shard 2's
    # only sample has a malformed sidecar.
    assert seen == [100, 102, 200, 201]
    lines = report.read_text().splitlines()
    assert any("s0_0001.wav" in line and "unreadable" in line for line in lines)
    assert any("shard-00001.tar" in line and "unreadable from sample" in line for line in lines)
    assert any("x_0" in line and "bad .json" in line for line in lines)


def test_clips_match_those_of_a_file_on_disk(tmp_path: Path) -> None:
    """The same keyed crop, whether the file is read from a shard or from disk."""
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((RATE // 2, 2))).astype(np.float32)
    sf.write(tmp_path / "a.flac", audio, 16000)  # other rate and stereo: resampled, down-mixed
    with tarfile.open(tmp_path / "one.tar", "w") as tar:
        tar.add(tmp_path / "a.flac", arcname="k.flac")
    config = ClipConfig(sample_rate=RATE, duration=0.1)
    (clip,) = list(ShardClipDataset(tmp_path / "one.tar", config, seed=5))
    from wildsep.data.clips import STREAM_CLIP, crop_file, keyed_rng, normalise

    rng = keyed_rng(5, STREAM_CLIP, 0, 0, 0)
    frames = sf.info(tmp_path / "a.flac").frames
    expected = normalise(
        crop_file(rng, str(tmp_path / "a.flac"), 16000, frames, config), "rms", -20
    )
    assert clip.shape == (800,) and clip.dtype == torch.float32
    np.testing.assert_allclose(clip.numpy(), expected[0], atol=1e-6)
    assert math.isclose(10 * math.log10(float(clip.square().mean())), -20, abs_tol=0.01)


def test_written_shards_hold_every_file_once_with_class_and_path(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    sources = {}
    for c in ("speech", "sfx"):
        (corpus / c).mkdir(parents=True)
        for i in range(5):
            path = corpus / c / f"{i}.wav"
            sf.write(path, np.full(400, 0.1 + i / 100, np.float32), RATE)
            sources[str(path)] = (c, path.read_bytes())
    (corpus / "speech" / "broken.wav").write_bytes(b"nope")
    out = tmp_path / "shards"
    written = write_shards(
        corpus, out, samples_per_shard=4, class_from_folder=True, progress=False,
        cache_dir=tmp_path / "cache",
    )  # fmt: skip
    assert [p.name for p in written] == [f"shard-{i:06d}.tar" for i in range(3)]
    assert list_shards(out) == written
    seen = {}
    for shard in written:
        for sample in iter_shard(shard):
            seen[sample.meta["path"]] = (sample.label, sample.audio)
    assert seen == sources
    assert json.loads((out / "shards.json").read_text())["samples"] == 10
    with pytest.raises(FileExistsError, match="already holds shards"):
        write_shards(corpus, out, class_from_folder=True, cache_dir=tmp_path / "cache")


def test_shard_cli_reports_bad_input_in_one_line(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "missing"), str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "does not exist" in err and "\n" not in err
