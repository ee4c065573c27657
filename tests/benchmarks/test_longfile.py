"""`python -m benchmarks.longfile` at a tiny size, so the script that measures an hour of audio
cannot rot: it runs the real command line and writes its rows between its markers."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from benchmarks.longfile import main, write_noise_wav


def test_noise_input_has_the_asked_length_and_a_silent_tenth_minute(tmp_path) -> None:
    path = tmp_path / "x.wav"
    write_noise_wav(path, 601.5, rate=1000)
    audio, rate = sf.read(str(path), dtype="float32")
    assert audio.shape == (601_500, 2) and rate == 1000
    assert not audio[540_000:600_000].any() and audio[600_000:].any() and audio[:540_000].any()


def test_benchmark_writes_both_rows_into_its_section(tmp_path: Path) -> None:
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\n<!-- BEGIN other -->\nkept\n<!-- END other -->\n")
    argv = ["--seconds", "2", "--backbone-seconds", "0.5", "--threads", "1"]
    main([*argv, "--tmp", str(tmp_path), "--note", "Tiny run.", "--md", str(md)])
    text = md.read_text()
    assert "<!-- BEGIN other -->\nkept\n<!-- END other -->" in text
    section = text.split("<!-- BEGIN longfile-cpu -->")[1].split("<!-- END longfile-cpu -->")[0]
    rows = [
        line for line in section.splitlines() if line.startswith("| demo") or "backbone" in line
    ]
    assert len(rows) == 2 and "Tiny run." in section
    demo, backbone = ([cell.strip() for cell in row.strip("|").split("|")] for row in rows)
    assert demo[2] == "2 s" and demo[3] == "2 prompts" and demo[-1].endswith("✓")
    assert backbone[1] == "18.70M" and backbone[3] == "8 outputs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["benchmarks.md"]  # temporaries gone
