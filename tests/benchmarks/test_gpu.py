"""`python -m benchmarks.gpu --tiny` on the CPU: the one-GPU script runs every measurement at
tiny sizes (the real recipes, a model eager and compiled, MixIT) so it cannot rot before a GPU
runs it, writes its three sections and only those, and respects its time budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.gpu import PEAK_BF16_TFLOPS, main


def section(text: str, name: str) -> str:
    return text.split(f"<!-- BEGIN {name} -->")[1].split(f"<!-- END {name} -->")[0]


def table_rows(body: str) -> list[list[str]]:
    lines = [line for line in body.splitlines() if line.startswith("| ")][1:]  # no header
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


@pytest.mark.slow
def test_tiny_run_measures_everything_and_writes_three_sections(tmp_path: Path) -> None:
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\n<!-- BEGIN data -->\nkept\n<!-- END data -->\n")
    main(["--tiny", "--device", "cpu", "--budget", "3600", "--md", str(md)])
    text = md.read_text()
    assert section(text, "data") == "\nkept\n"
    losses = table_rows(section(text, "losses-cpu"))
    assert [row[:2] for row in losses][:2] == [["exact", "4"], ["exact", "8"]]
    training = table_rows(section(text, "gpu-training-cpu"))
    assert [row[0].split(",")[0] for row in training] == ["pre-training", "TUSS-medium"]
    for row in training:
        steps_per_s = float(row[3].split()[0])
        assert steps_per_s > 0 and float(row[2]) > 0 and row[-1] == "—"  # no MFU on a CPU
        assert "GFLOP" in row[5]
    models = table_rows(section(text, "models-cpu"))
    assert [(row[0], row[3]) for row in models] == [
        ("tuss-medium", "fp32, eager"),
        ("demucs-small", "fp32, eager"),
        ("tuss-medium", "fp32, compiled"),
        ("demucs-small", "fp32, compiled"),
    ]
    assert "Skipped" not in section(text, "models-cpu")


def test_out_of_budget_runs_are_skipped_and_said_so(tmp_path: Path) -> None:
    md = tmp_path / "benchmarks.md"
    main(["--tiny", "--device", "cpu", "--budget", "0", "--md", str(md)])
    text = md.read_text()
    training = table_rows(section(text, "gpu-training-cpu"))
    assert [row[1] for row in training] == ["skipped: out of time"] * 2
    assert "Skipped for the 0 s budget: tuss-medium (eager)" in section(text, "models-cpu")
    assert table_rows(section(text, "losses-cpu"))  # MixIT is always measured


def test_peak_table_matches_the_more_specific_names_first() -> None:
    names = [name for name, _ in PEAK_BF16_TFLOPS]
    assert names.index("H100 PCIe") < names.index("H100") and names.index("GH200") > -1
