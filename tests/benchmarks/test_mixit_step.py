"""`python -m benchmarks.mixit_step --quick` on the CPU: the whole-step MixIT benchmark runs every
row at tiny sizes, says why the rows it cannot run are missing, and writes only its section."""

from __future__ import annotations

from pathlib import Path

from benchmarks.mixit_step import ROWS, main


def test_quick_run_times_every_row_and_writes_only_its_section(tmp_path: Path) -> None:
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\n<!-- BEGIN other -->\nkept\n<!-- END other -->\n")
    main(["--quick", "--device", "cpu", "--clock", "cpu", "--md", str(md)])
    text = md.read_text()
    assert "<!-- BEGIN other -->\nkept\n<!-- END other -->" in text
    section = text.split("<!-- BEGIN mixit-step-cpu -->")[1].split("<!-- END mixit-step-cpu -->")[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")][1:]  # no header
    rows = {
        (cells[0], int(cells[1])): cells
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)
    }
    assert list(rows) == ROWS  # every configured (method, M), in order
    assert ("efficient", 32) in ROWS and ("exact", 8) in ROWS
    assert rows["exact", 32][3].startswith("not run: over `mixit`'s 4,194,304-candidate limit")
    assert rows["exact", 8][6] == "1.00×"
    for key in [
        ("exact", 4),
        ("efficient", 8),
        ("exact", 16),
        ("efficient", 16),
        ("efficient", 32),
    ]:
        step, loss, share = float(rows[key][3]), float(rows[key][4]), rows[key][5]
        assert step > 0 and loss > 0 and 0 < float(share.rstrip("%")) < 100
        assert float(rows[key][6].rstrip("×")) > 0
    assert "CPU ms" in section and "Quick smoke-run sizes" in section
