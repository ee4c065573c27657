"""`wildsep separate`: outputs per prompt at the input's rate, length and channels; folders;
one-line errors with exit status 2; inputs never overwritten."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wildsep.cli import main


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(path: Path, seconds: float, rate: int, channels: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    audio = 0.1 * rng.standard_normal((round(seconds * rate), channels))
    sf.write(str(path), audio, rate, subtype=subtype)
    return path


def assert_matches(output: Path, source: Path) -> None:
    """An output has its input's rate, length and channel count, stored as float."""
    out, inp = sf.info(str(output)), sf.info(str(source))
    assert (out.samplerate, out.frames, out.channels) == (inp.samplerate, inp.frames, inp.channels)
    assert out.subtype == "FLOAT"


@pytest.mark.slow
def test_70s_stereo_file_gives_one_file_per_prompt(tmp_path, tuss_dir) -> None:
    song = write(tmp_path / "in" / "song.wav", 70.0, 44100, 2)
    before = digest(song)
    out = tmp_path / "out"
    args = [str(song), "--model", str(tuss_dir), "--out", str(out), "--batch-size", "8"]
    assert main(["separate", *args, "--prompts", "speech", "sfx"]) == 0
    written = sorted(p.name for p in (out / "song").iterdir())
    assert written == ["sfx.wav", "speech.wav"]
    for name in written:
        assert_matches(out / "song" / name, song)
    assert digest(song) == before


def test_console_script_separates_with_a_backbone(tmp_path, backbone_dir) -> None:
    clip = write(tmp_path / "clip.flac", 0.5, 16000, 1)
    script = Path(sys.executable).with_name("wildsep")
    assert script.is_file(), "install the package (pip install -e .) to get the console script"
    args = ["separate", str(clip), "--model", str(backbone_dir), "--out", str(tmp_path / "o")]
    result = subprocess.run([str(script), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "o" / "clip").iterdir())
    assert names == ["output_0.wav", "output_1.wav", "output_2.wav"]
    assert_matches(tmp_path / "o" / "clip" / "output_0.wav", clip)


def test_folders_are_recursed_and_bad_files_reported(tmp_path, tuss_dir, capsys) -> None:
    root = tmp_path / "recordings"
    good = [
        write(root / "a.wav", 0.4, 22050, 1),
        write(root / "sub" / "b.flac", 0.3, 48000, 2),
        write(root / "sub" / "deeper" / "c.wav", 0.2, 8000, 3, "FLOAT"),
    ]
    (root / "sub" / "broken.wav").write_bytes(b"RIFF not really audio")
    (root / "notes.txt").write_text("not audio, not an input")
    (root / "._a.wav").write_bytes(b"\0" * 64)  # macOS metadata: hidden, skipped
    before = {p: digest(p) for p in root.rglob("*") if p.is_file()}
    out = root / "separated"  # inside the input folder: scans must skip it
    prompts = ["--prompts", "sfx,speech", "sfx"]  # spaces and commas both separate prompts
    args = ["separate", str(root), "--model", str(tuss_dir), *prompts, "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "broken.wav: unreadable" in err and "1 input(s) failed" in err
    assert "._a.wav" not in err and "Traceback" not in err
    for source, folder in zip(good, ["a", "sub/b", "sub/deeper/c"], strict=True):
        names = sorted(p.name for p in (out / folder).iterdir())
        assert names == ["sfx_1.wav", "sfx_2.wav", "speech.wav"]  # duplicates numbered
        assert_matches(out / folder / "sfx_2.wav", source)
    assert {p: digest(p) for p in before} == before
    outputs = sorted(out.rglob("*.wav"))
    assert main(args) == 2  # a rerun separates the same inputs, not the earlier outputs
    assert sorted(out.rglob("*.wav")) == outputs


def _one_line_error(capsys, args: list[str], expected: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_missing_and_invalid_model_folders(tmp_path, capsys) -> None:
    clip = str(write(tmp_path / "x.wav", 0.1, 8000, 1))
    out = ["--out", str(tmp_path / "o")]
    _one_line_error(
        capsys, ["separate", clip, "--model", str(tmp_path / "nope"), *out], "does not exist"
    )
    _one_line_error(
        capsys, ["separate", clip, "--model", str(tmp_path), *out], "has no config.json"
    )


def test_unknown_prompts_list_the_valid_ones(tmp_path, tuss_dir, backbone_dir, capsys) -> None:
    clip = str(write(tmp_path / "x.wav", 0.1, 8000, 1))
    args = ["separate", clip, "--out", str(tmp_path / "o"), "--model"]
    _one_line_error(
        capsys,
        [*args, str(tuss_dir), "--prompts", "speech", "piano"],
        "unknown prompts ['piano']; this model knows ['speech', 'sfx', 'sfxbg',",
    )
    _one_line_error(capsys, [*args, str(tuss_dir)], "needs prompts")
    _one_line_error(capsys, [*args, str(backbone_dir), "--prompts", "speech"], "unconditional")
    assert not (tmp_path / "o").exists()


def test_refuses_to_overwrite_an_input(tmp_path, tuss_dir, capsys) -> None:
    """`song.wav` would write `song/speech.wav`, which is itself an input."""
    song = write(tmp_path / "song.wav", 0.1, 8000, 1)
    stem_file = write(tmp_path / "song" / "speech.wav", 0.1, 8000, 1)
    before = digest(stem_file)
    args = ["separate", str(tmp_path), "--model", str(tuss_dir), "--prompts", "speech"]
    _one_line_error(capsys, [*args, "--out", str(tmp_path)], "refusing to write")
    assert digest(stem_file) == before and song.is_file()
    # Two inputs with the same stem would write to the same folder: refused too.
    other = write(tmp_path / "elsewhere" / "song.flac", 0.1, 8000, 1)
    _one_line_error(
        capsys,
        ["separate", str(song), str(other), *args[2:], "--out", str(tmp_path / "o")],
        "would both write to",
    )
