"""The miner: segment logic, precision on tracks with known silent spans, resume after an
interruption, and the truth-corpus scorer."""

import json
import math

import numpy as np
import pytest
import soundfile as sf

from wildsep.data import CorpusConfig, MiningConfig, mine_corpus, score_mining, write_truth_corpus
from wildsep.data.mining import SegmentGrid, absent_segments, mine_file

RATE = 8000


def corpus(folder, cache):
    return CorpusConfig(source=str(folder / "tracks"), cache_dir=str(cache))


def rows_of(path):
    return sorted(path.read_text().splitlines())


def test_segments_are_absent_when_every_window_is():
    grid = SegmentGrid(windows=3, stride=2, window_hop=100, length=400)
    probs = np.array(
        [
            [0.01, 0.001],
            [0.02, 0.001],
            [0.50, 0.001],
            [0.01, 0.001],
            [0.01, 0.001],
            [0.05, 0.001],
            [0.01, 0.001],
        ]
    )  # 7 windows → segments at windows 0, 2, 4
    segment, cls, conf = absent_segments(probs, grid, confidence=0.9)
    assert list(zip(segment.tolist(), cls.tolist(), strict=True)) == [
        (0, 1),
        (1, 1),
        (2, 0),
        (2, 1),
    ]
    np.testing.assert_allclose(conf, [0.999, 0.999, 0.95, 0.999])
    assert absent_segments(probs[:2], grid, 0.9)[0].size == 0  # shorter than a segment


def test_segments_must_lie_on_the_window_grid():
    # windows of 0.5 s every 0.25 s: segments 0.5 + k·0.25 s
    assert SegmentGrid.create(MiningConfig(segment_seconds=2.0), 4000, 2000, 8000).windows == 7
    with pytest.raises(ValueError, match="grid"):
        SegmentGrid.create(MiningConfig(segment_seconds=1.1), 4000, 2000, 8000)
    with pytest.raises(ValueError, match="grid"):
        SegmentGrid.create(
            MiningConfig(segment_seconds=1.0, segment_hop_seconds=0.3), 4000, 2000, 8000
        )


@pytest.mark.parametrize("hop", [None, 0.5])
def test_miner_precision_on_tracks_with_known_silent_spans(band_tracks, detector, tmp_path, hop):
    manifest = tmp_path / "out" / "mined.jsonl"
    config = MiningConfig(segment_seconds=1.0, segment_hop_seconds=hop, confidence=0.9)
    report = mine_corpus(
        detector, corpus(band_tracks, tmp_path / "cache"), manifest, config, progress=False
    )
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert report.files == 4 and sum(report.segments.values()) == len(rows)
    scores = score_mining(rows, band_tracks / "truth.jsonl", 1.0, hop)
    assert scores["all"].true_positive >= 40
    assert scores["all"].precision == 1.0  # never "absent" where the class sounds
    assert scores["all"].recall >= 0.85  # and most truly silent segments are found
    for row in rows:  # offsets in the file's own frames (16 kHz tracks read at 8 kHz)
        rate = sf.info(row["path"]).samplerate
        assert row["sample_rate"] == rate
        assert row["start"] == round(row["start_seconds"] * rate)
        assert row["frames"] == round(1.0 * rate) and row["seconds"] == 1.0
        assert row["confidence"] >= 0.9


def test_quiet_segments_are_not_mined(tmp_path, detector):
    audio = 1e-4 * np.random.default_rng(0).standard_normal(4 * RATE)  # −80 dBFS floor
    n = 2 * RATE - 400  # a high tone over [0, 1.95) s
    ramp = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / 160)
    audio[:n] += 0.1 * np.sin(2 * np.pi * 3000 * np.arange(n) / RATE) * ramp
    path = tmp_path / "a.wav"
    sf.write(path, audio.astype(np.float32), RATE)
    grid = SegmentGrid.create(MiningConfig(segment_seconds=1.0), 4000, 2000, RATE)
    loud, _ = mine_file(detector, str(path), MiningConfig(segment_seconds=1.0), grid, [0, 1])
    assert {(r["start_seconds"], r["absent"]) for r in loud} == {(0.0, "low"), (1.0, "low")}
    everything, seconds = mine_file(
        detector, str(path), MiningConfig(silence_threshold_db=-100.0), grid, [0, 1]
    )
    assert seconds == 4.0 and len(everything) == 2 + 2 * 2  # + both classes in the floor


def test_mining_resumes_after_an_interruption(band_tracks, detector_class, tmp_path):
    class Interrupted(detector_class):
        """Stops the run (as Ctrl-C or a kill would) when asked for its third file."""

        def probabilities(self, x, chunk_seconds=60.0):
            if self.calls == 2:
                raise KeyboardInterrupt
            return super().probabilities(x, chunk_seconds)

    config = MiningConfig(segment_seconds=1.0, confidence=0.9)
    source = corpus(band_tracks, tmp_path / "cache")
    whole = tmp_path / "whole" / "mined.jsonl"
    mine_corpus(detector_class().eval(), source, whole, config, progress=False)

    manifest = tmp_path / "resumed" / "mined.jsonl"
    with pytest.raises(KeyboardInterrupt):
        mine_corpus(Interrupted().eval(), source, manifest, config, progress=False)
    done = manifest.with_name("mined.jsonl.done").read_text().splitlines()
    assert len(done) == 2
    # What a SIGKILL in the middle of the third file can leave: some of its rows, and a torn
    # last line.
    third = sorted(str(p) for p in (band_tracks / "tracks").iterdir() if str(p) not in done)[0]
    with open(manifest, "a") as f:
        f.write(json.dumps({"path": third, "start": 0, "absent": "low", "confidence": 1.0}) + "\n")
        f.write('{"path": "/x", "sta')
    again = detector_class().eval()
    report = mine_corpus(again, source, manifest, config, progress=False)
    assert again.calls == 2  # only the files not done
    assert report.files == 4
    assert rows_of(manifest) == rows_of(whole)  # the same rows as an uninterrupted run
    assert mine_corpus(detector_class().eval(), source, manifest, config, progress=False).files == 4
    assert rows_of(manifest) == rows_of(whole)  # a finished manifest is left as it is

    with pytest.raises(ValueError, match="other settings"):
        mine_corpus(
            detector_class(), source, manifest, MiningConfig(segment_seconds=1.0, confidence=0.5)
        )
    with pytest.raises(ValueError, match="inside the corpus"):
        mine_corpus(detector_class(), source, band_tracks / "tracks" / "m.jsonl", config)


def test_streaming_mining_finds_the_same_segments(band_tracks, detector, tmp_path):
    config = MiningConfig(segment_seconds=1.0)
    source = corpus(band_tracks, tmp_path / "cache")
    indexed, streamed = tmp_path / "a" / "m.jsonl", tmp_path / "b" / "m.jsonl"
    mine_corpus(detector, source, indexed, config, progress=False)
    report = mine_corpus(detector, source, streamed, config, streaming=True, progress=False)
    assert report.files == 4 and rows_of(indexed) == rows_of(streamed)


def test_score_mining_counts_against_known_spans(tmp_path):
    truth = tmp_path / "truth.jsonl"
    truth.write_text(
        json.dumps({"path": "t.wav", "seconds": 4.0, "active": {"speech": [[0.5, 1.2]]}})
    )
    path = str(tmp_path / "t.wav")
    rows = [
        {"path": path, "start_seconds": 0.0, "absent": "speech"},  # overlaps [0.5, 1.2): wrong
        {"path": path, "start_seconds": 2.0, "absent": "speech"},  # right
    ]
    score = score_mining(rows, truth, segment_seconds=1.0)["speech"]
    # candidates [0,1) [1,2) [2,3) [3,4); truly absent: [2,3) and [3,4)
    assert (score.true_positive, score.false_positive, score.false_negative) == (1, 1, 1)
    assert score.precision == 0.5 and score.recall == 0.5
    half = score_mining(rows, truth, segment_seconds=1.0, hop_seconds=0.5)["speech"]
    # 7 candidates at 0.5 s steps; absent: starts 1.5, 2.0, 2.5, 3.0
    assert (half.true_positive, half.false_positive, half.false_negative) == (1, 1, 3)
    assert math.isnan(score_mining([], truth, 1.0)["speech"].precision)


def test_truth_corpus_is_silent_outside_its_spans(tmp_path):
    out = write_truth_corpus(
        tmp_path, classes=("speech", "sfx"), tracks=3, seconds=6.0, sample_rate=RATE
    )
    rows = [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    quiet = loud = 0
    for row in rows:
        audio, rate = sf.read(out / row["path"])
        assert rate == RATE and len(audio) == 6 * RATE
        spans = [s for spans in row["active"].values() for s in spans]
        assert all(0 <= a < b <= 6.0 for a, b in spans)
        for k in range(24):  # 0.25 s windows
            a, b = k * 0.25, (k + 1) * 0.25
            rms_db = 10 * np.log10(np.mean(audio[round(a * RATE) : round(b * RATE)] ** 2))
            if not any(s < b and e > a for s, e in spans):
                assert rms_db < -47  # only the −50 dBFS floor
                quiet += 1
            loud += rms_db > -40
    assert quiet > 0 and loud > 0
