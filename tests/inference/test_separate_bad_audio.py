"""`wildsep separate` validates audio exactly as training does (`check_audio_file`): a truncated,
corrupt, empty or non-finite file is one line of error naming it, nothing is written for it,
and the other files of a folder are still separated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from wildsep.cli import main
from wildsep.data.audio_io import check_audio_file, read_audio


def write_wav(path: Path, frames: int, rate: int = 8000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = 0.1 * np.random.default_rng(frames).standard_normal((frames, channels))
    sf.write(str(path), audio.astype(np.float32), rate, subtype="PCM_16")
    return path


def truncated_wav(path: Path) -> Path:
    """A 16-bit WAV whose header says 24,000 frames while the file holds 12,000."""
    write_wav(path, 24_000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 12_000 * 2])
    return path


def test_a_truncated_wav_is_refused_in_one_line_and_nothing_is_written(
    tmp_path, tuss_dir, capsys
) -> None:
    clip = truncated_wav(tmp_path / "cut.wav")
    assert sf.info(str(clip)).frames == 12_000  # libsndfile alone would accept it, shorter
    out = tmp_path / "out"
    args = ["separate", str(clip), "--model", str(tuss_dir), "--prompts", "speech"]
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if str(clip) in x]
    assert line == f"wildsep: error: {clip}: truncated: header promises 24000 more bytes"
    assert not (out / "cut").exists()


def test_a_folder_separates_the_good_files_and_reports_each_bad_one(
    tmp_path, tuss_dir, capsys
) -> None:
    root = tmp_path / "in"
    good = [write_wav(root / "a.wav", 4000), write_wav(root / "sub" / "b.wav", 3000, 16000, 2)]
    bad = {
        truncated_wav(root / "cut.wav"): "truncated: header promises",
        root / "empty.wav": "empty file (0 bytes)",
        root / "nan.wav": "non-finite samples (NaN/Inf)",
        root / "junk.flac": "unreadable:",
    }
    (root / "empty.wav").write_bytes(b"")
    nan = np.full((2000, 1), 0.1, dtype=np.float32)
    nan[700] = np.nan
    sf.write(str(root / "nan.wav"), nan, 8000, subtype="FLOAT")
    (root / "junk.flac").write_bytes(b"fLaC but then nothing sensible" * 10)
    out = tmp_path / "out"
    args = ["separate", str(root), "--model", str(tuss_dir), "--prompts", "speech"]
    assert main([*args, "--out", str(out)]) == 2  # non-zero at the end: some inputs failed
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    for path, reason in bad.items():
        (line,) = [x for x in captured.err.splitlines() if str(path) in x]
        assert line.startswith(f"wildsep: error: {path}: {reason}"), line
        assert not (out / path.stem).exists()
    assert f"{len(bad)} input(s) failed" in captured.err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == [
        "a/speech.wav",
        "sub/b/speech.wav",
    ]
    for path in good:
        rel = path.relative_to(root)
        info = sf.info(str(out / rel.parent / rel.stem / "speech.wav"))
        assert (info.frames, info.channels) == (
            sf.info(str(path)).frames,
            sf.info(str(path)).channels,
        )


def test_separation_and_training_share_one_verdict(tmp_path) -> None:
    """read_audio refuses exactly the files check_audio_file refuses (silence aside), with the
    same reason, and returns the samples soundfile decodes for the others."""
    files = {
        "cut": truncated_wav(tmp_path / "cut.wav"),
        "good": write_wav(tmp_path / "good.wav", 5000, channels=2),
        "empty": tmp_path / "empty.wav",
        "text": tmp_path / "text.wav",
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("not audio")
    for name, path in files.items():
        verdict = check_audio_file(path)
        try:
            audio, rate = read_audio(path)
        except ValueError as err:
            assert not verdict.ok and str(err) == verdict.reason, name
        else:
            assert verdict.ok, name
            expected, expected_rate = sf.read(str(path), dtype="float32", always_2d=True)
            assert rate == expected_rate and np.array_equal(audio, expected.T), name
