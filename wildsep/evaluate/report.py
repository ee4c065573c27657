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


# Benchmarks name the scale-invariant SNR as the papers do (the same quantity as SI-SNR).
_BENCHMARK_LABELS = {"si_snr": "SI-SDR", "snr": "SNR"}


def _benchmark_lines(b: dict[str, Any]) -> list[str]:
    """The one-line task table next to the paper's numbers, then per class and conventions."""
    label = _BENCHMARK_LABELS[b["metric"]]
    lines = ["", f"## Benchmark {b['name']}: {b['task']} on {b['corpus']}", ""]
    lines += _table(
        ["task", "mixtures", "sources", "metric", "this model", *b["paper"]],
        [
            [b["task"], str(b["examples"]), str(b["sources"]), label, _db(b["score"])]
            + [f"{v:.1f}" for v in b["paper"].values()]
        ],
    )
    per_class = ", ".join(f"{c} {_db(v)}" for c, v in b["per_class"].items())
    lines += ["", f"{label} improvement: {_db(b['improvement'])} dB. Per class: {per_class}."]
    if "sdr" in b:
        medians = ", ".join(f"{c} {_db(v)}" for c, v in b["sdr_per_class"].items())
        lines += [
            f"BSS-eval SDR (median over {b['sdr_window']:g} s windows, then over mixtures): "
            f"{medians}; mean over classes {_db(b['sdr'])}."
        ]
    lines += [
        f"Conventions: {b['notes']}. Paper columns: seed 001 (TUSS thesis), medium (M) and "
        "large (L) models, on the paper's preparation of the set.",
    ]
    return lines


def to_markdown(result: dict[str, Any]) -> str:
    """The summaries of `evaluate` as Markdown tables (dB)."""
    s = result["summary"]
    overall = s["overall"]
    lines = [
        f"# {result['model']} on {result['set']}",
        "",
        f"{overall['examples']} mixtures, {overall['sources']} scored sources, "
        f"{result['kind']} model ({result['model_class']}), {result['sample_rate']} Hz.",
    ]
    if "benchmark" in s:
        lines += _benchmark_lines(s["benchmark"])
    lines += ["", "## Tasks (TUSS paper)", ""]
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
        if f.get("ss_per_class"):
            per_class = ", ".join(f"{c} {_db(v)}" for c, v in f["ss_per_class"].items())
            lines += ["", f"SS per class: {per_class}."]
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
