"""Reports: the summaries of an evaluation as Markdown tables, and metrics.json/metrics.md."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from wildsep.evaluate.score import LABELS, METRICS


def _db(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.2f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _task_row(task: str, t: dict[str, Any]) -> list[str]:
    score, improvement = _db(t["score"]), _db(t["improvement"])
    return [task, str(t["examples"]), str(t["sources"]), LABELS[t["metric"]], score, improvement]


def to_markdown(result: dict[str, Any]) -> str:
    """The summaries of `evaluate` as Markdown tables (dB)."""
    s = result["summary"]
    overall = s["overall"]
    lines = [
        f"# {result['model']} on {result['set']}",
        "",
        f"{overall['examples']} mixtures, {overall['sources']} scored sources, "
        f"{result['kind']} model ({result['model_class']}), {result['sample_rate']} Hz.",
        "",
        "## Tasks (TUSS paper)",
        "",
    ]
    lines += _table(
        ["task", "mixtures", "sources", "metric", "score", "improvement"],
        (_task_row(task, t) for task, t in s["tasks"].items()),
    )
    if "fuss" in s:
        f = s["fuss"]
        lines += ["", "## FUSS", ""]
        lines += _table(
            ["MSi", "SS", "under", "equal", "over"],
            [
                [_db(f["msi"]), _db(f["ss"])]
                + [f"{f[k + '_separation']:.2f}" for k in ("under", "equal", "over")]
            ],
        )
    metric_header = [LABELS[k] for k in METRICS]
    lines += ["", "## Per class", ""]
    lines += _table(
        ["class", "sources", *metric_header],
        ([c, str(a["sources"])] + [_db(a[k]) for k in METRICS] for c, a in s["per_class"].items()),
    )
    lines += ["", "## Per number of sources", ""]
    lines += _table(
        ["sources", "mixtures", *metric_header],
        (
            [n, str(a["examples"])] + [_db(a[k]) for k in METRICS]
            for n, a in s["per_num_sources"].items()
        ),
    )
    lines += ["", "## Overall", ""]
    lines += _table(metric_header, [[_db(overall[k]) for k in METRICS]])
    return "\n".join(lines) + "\n"


def write_results(result: dict[str, Any], out: str | Path) -> Path:
    """Write `metrics.json` and `metrics.md` into `out` (created if needed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "metrics.md").write_text(to_markdown(result))
    return out
