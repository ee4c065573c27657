"""Streaming mode: rank shards are disjoint and cover the usable files, bad files are skipped
and reported, and clips stream through a DataLoader with workers."""

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from wildsep.data import ClipConfig, StreamingClipDataset, pair_clips, stream_corpus


def _paths(stream) -> list[str]:
    return [row["path"] for row in stream]


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_rank_shards_are_disjoint_and_cover_the_usable_files(
    tmp_path: Path, write_noise, world_size: int
) -> None:
    good = {str(write_noise(tmp_path / "c" / f"{i:02d}.wav", seconds=0.2)) for i in range(13)}
    (tmp_path / "c" / "broken.wav").write_text("not audio")
    per_rank = []
    for rank in range(world_size):
        stream = stream_corpus(
            tmp_path / "c",
            rank=rank,
            world_size=world_size,
            cache_dir=tmp_path / "cache",
            report_path=tmp_path / f"skipped{rank}.csv",
        )
        per_rank.append(_paths(stream))
    seen = [p for paths in per_rank for p in paths]
    assert len(seen) == len(set(seen)) and set(seen) == good
    reports = [p.read_text() for p in tmp_path.glob("skipped*.csv")]
    assert "".join(reports).count("broken.wav,unreadable") == 1, "checked by exactly one rank"


def test_shuffled_streams_are_seeded(tmp_path: Path, write_noise) -> None:
    for i in range(20):
        write_noise(tmp_path / "c" / f"{i:02d}.wav", seconds=0.2)

    def order(seed: int, epoch: int) -> list[str]:
        stream = stream_corpus(
            tmp_path / "c", shuffle_seed=seed, num_shards=4, cache_dir=tmp_path / "cache"
        )
        stream.set_epoch(epoch)
        return _paths(stream)

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1) and sorted(order(0, 0)) == sorted(order(0, 1))


def test_streaming_clips_through_workers(tmp_path: Path, write_noise) -> None:
    for i in range(8):
        write_noise(tmp_path / "c" / f"{i}.flac", seconds=0.6, sr=44100, channels=2)
    stream = stream_corpus(tmp_path / "c", num_shards=4, cache_dir=tmp_path / "cache")
    clips = StreamingClipDataset(stream, ClipConfig(sample_rate=8000, duration=0.5), seed=0)
    loader = DataLoader(clips, batch_size=4, num_workers=2, collate_fn=pair_clips)
    batches = list(loader)
    assert sum(b["references"].shape[0] for b in batches) == 4
    assert all(b["references"].shape[1:] == (2, 4000) for b in batches)
    serial = DataLoader(clips, batch_size=4, collate_fn=pair_clips)

    def clips_of(loader_batches) -> list[torch.Tensor]:
        clips = [c for b in loader_batches for c in b["references"].reshape(-1, 4000)]
        return sorted(clips, key=lambda c: float(c.sum()))

    # Crops are keyed on the file, not on the worker that reads it.
    for x, y in zip(clips_of(serial), clips_of(batches), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
