"""Scoring: per-source metrics of one separated example and their summaries.

- Prompted models (TUSS): estimates are matched to the references by PIT (negative SI-SNR)
  inside groups of identical classes, so two `speech` outputs may swap but a `speech` and an
  `sfx` output never do.
- Unconditional models: each active reference gets a distinct output (Hungarian on SI-SNR),
  FUSS-style; plus MSi, SS and under/equal/over-separation rates. A model whose outputs are
  named (a Demucs's `sources`, or names given to `evaluate`) and that has every class of an
  example is scored output by name instead: the `drums` output against the drums reference.

Silent references are not scored. See docs/evaluation.md.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from losses import pit, si_snr
from wildsep.evaluate.protocols import Benchmark
from wildsep.inference import Separator
from wildsep.metrics import (
    active_references,
    match_outputs,
    separation_counts,
    source_metrics,
    windowed_sdr,
)

METRICS = ("si_snr", "si_snri", "snr", "snri")
LABELS = {"si_snr": "SI-SNR", "si_snri": "SI-SNRi", "snr": "SNR", "snri": "SNRi"}
STEMS = frozenset({"vocals", "bass", "drums", "other"})
# Tasks in the order of the TUSS paper's tables; "mixed" holds every other class combination.
TASKS = ("SE", "SS", "USS", "MSS", "CASS", "mixed")
# MSS is reported in SNR, as the paper (and music separation generally) does.
TASK_METRIC = {task: ("snr" if task == "MSS" else "si_snr") for task in TASKS}


def classify_task(classes: Sequence[str]) -> str:
    """The TUSS task an example belongs to, from its multiset of classes.

    MSS: only stems (vocals, bass, drums, other). CASS: exactly speech + sfxbg + musicbg.
    SE: one speech + sfxbg. SS: two or more speech, optionally + one sfxbg. USS: only sfx.
    Anything else: "mixed".
    """
    counts = Counter(classes)
    if not counts:
        return "mixed"
    if set(counts) <= STEMS:
        return "MSS"
    if counts == Counter(["speech", "sfxbg", "musicbg"]):
        return "CASS"
    if counts == Counter(["speech", "sfxbg"]):
        return "SE"
    if counts["speech"] >= 2 and set(counts) <= {"speech", "sfxbg"} and counts["sfxbg"] <= 1:
        return "SS"
    if set(counts) == {"sfx"}:
        return "USS"
    return "mixed"


# ---------------------------------------------------------------------------------------------
# Scoring one example


def _rows(classes: Sequence[str], index: Tensor, output: Tensor, metrics: dict[str, Tensor]):
    """Per-source rows; improvements are undefined (None) when one source is active, because
    the mixture then is the reference (FUSS reports SI-SNR, not SI-SNRi, for those)."""
    single = len(index) < 2
    rows = []
    for j, (n, m) in enumerate(zip(index.tolist(), output.tolist(), strict=True)):
        row: dict[str, Any] = {"class": classes[n], "reference": n, "output": m}
        for key in METRICS:
            row[key] = None if single and key.endswith("i") else float(metrics[key][j])
        rows.append(row)
    return rows


def _negative_si_snr_of_active(est: Tensor, ref: Tensor) -> Tensor:
    """PIT cost: −SI-SNR, and 0 against a silent reference so that it cannot sway the match."""
    return torch.where(
        active_references(ref), -si_snr(est, ref), torch.zeros((), device=ref.device)
    )


def score_prompted(
    est: Tensor, refs: Tensor, mixture: Tensor, classes: Sequence[str]
) -> list[dict[str, Any]]:
    """Rows for the active references of one prompted separation.

    Args:
        est: (N, T) one estimate per prompt, prompts = `classes`.
        refs: (N, T) references, in the order of `classes`.
        mixture: (T,).
    """
    label = {c: i for i, c in enumerate(dict.fromkeys(classes))}
    groups = torch.tensor([label[c] for c in classes])
    perm = pit(est[None], refs[None], loss=_negative_si_snr_of_active, groups=groups).perm[0]
    active = active_references(refs)
    index = torch.nonzero(active).flatten()
    metrics = source_metrics(est[perm[index]], refs[index], mixture)
    return _rows(classes, index, perm[index], metrics)


def score_unconditional(
    est: Tensor, refs: Tensor, mixture: Tensor, classes: Sequence[str]
) -> tuple[list[dict[str, Any]], int]:
    """Rows for the active references of one unconditional separation, and the number of
    active outputs (FUSS: power above 1% of the weakest active reference's).

    Args:
        est: (M, T) outputs. refs: (N, T) references, N ≤ M. mixture: (T,).
    """
    index = torch.nonzero(active_references(refs)).flatten()
    chosen = match_outputs(est, refs[index]) if len(index) else index
    metrics = source_metrics(est[chosen], refs[index], mixture)
    active_outputs, _ = separation_counts(est, refs)
    return _rows(classes, index, chosen, metrics), active_outputs


def score_named(
    est: Tensor, refs: Tensor, mixture: Tensor, classes: Sequence[str], names: Sequence[str]
) -> list[dict[str, Any]]:
    """Rows for the active references of a model with named outputs: reference n is scored
    against the output called classes[n] (every class must be one of `names`).

    Args:
        est: (M, T) outputs, output m called names[m]. refs: (N, T). mixture: (T,).
    """
    index = torch.nonzero(active_references(refs)).flatten()
    chosen = torch.tensor([list(names).index(classes[n]) for n in index.tolist()], dtype=torch.long)
    metrics = source_metrics(est[chosen], refs[index], mixture)
    return _rows(classes, index, chosen, metrics)


def score_example(
    separator: Separator,
    item: dict[str, Any],
    benchmark: Benchmark | None = None,
    outputs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Separate one evaluation item (`EvalSetDataset` at the model's rate, mono) and score it:
    the per-example row of metrics.json. A `benchmark` may add BSS-eval SDR per source and
    the FUSS separation counts (always counted for unconditional models). `outputs` names an
    unconditional model's outputs (default: the model's own `sources`, if any): examples
    whose classes are all among them are scored by name (`score_named`)."""
    mixture, refs, classes = item["mixture"], item["references"], item["classes"]
    unconditional = separator.prompts is None
    est = separator.separate(mixture, separator.sample_rate, None if unconditional else classes)
    est = est[:, 0]  # (K, 1, T) → (K, T)
    row: dict[str, Any] = {"name": item["name"], "classes": classes}
    names = list(outputs or getattr(separator.model.config, "sources", ()) or ())
    if unconditional and names and set(classes) <= set(names):
        row["sources"] = score_named(est, refs, mixture, classes, names)
    elif unconditional:
        row["sources"], _ = score_unconditional(est, refs, mixture, classes)
    else:
        row["sources"] = score_prompted(est, refs, mixture, classes)
    row["n_sources"] = len(row["sources"])
    row["task"] = classify_task(classes)
    if benchmark is not None and benchmark.sdr_window is not None and row["sources"]:
        outputs = torch.tensor([s["output"] for s in row["sources"]])
        references = torch.tensor([s["reference"] for s in row["sources"]])
        window = round(benchmark.sdr_window * separator.sample_rate)
        sdr = windowed_sdr(est[outputs], refs[references], window)
        for source, value in zip(row["sources"], sdr.tolist(), strict=True):
            source["sdr"] = None if math.isnan(value) else value
    if unconditional or (benchmark is not None and benchmark.fuss):
        n = row["n_sources"]
        active_outputs, _ = separation_counts(est, refs)
        row["active_outputs"] = active_outputs
        row["separation"] = (
            "equal" if active_outputs == n else "under" if active_outputs < n else "over"
        )
    return row


# ---------------------------------------------------------------------------------------------
# Summaries


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _aggregate(sources: list[dict[str, Any]], examples: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {} if examples is None else {"examples": examples}
    out["sources"] = len(sources)
    out.update({key: _mean(s[key] for s in sources) for key in METRICS})
    return out


def _median(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def benchmark_summary(examples: list[dict[str, Any]], benchmark: Benchmark) -> dict[str, Any]:
    """The task score of a benchmark (mean of its metric over every scored source) with the
    improvement, per class, and for SDR benchmarks the SiSEC figure: per class the median over
    mixtures of the per-mixture (window-median) SDR, and their mean over classes."""
    metric = benchmark.metric
    sources = [s for e in examples for s in e["sources"]]
    classes = sorted({s["class"] for s in sources})
    out: dict[str, Any] = {
        **benchmark.describe(),
        "examples": len(examples),
        "sources": len(sources),
        "score": _mean(s[metric] for s in sources),
        "improvement": _mean(s[metric + "i"] for s in sources),
        "per_class": {c: _mean(s[metric] for s in sources if s["class"] == c) for c in classes},
    }
    if benchmark.sdr_window is not None:
        medians = {c: _median(s.get("sdr") for s in sources if s["class"] == c) for c in classes}
        out["sdr_per_class"] = medians
        out["sdr"] = _mean(medians.values())
    return out


def summarise(
    examples: list[dict[str, Any]], unconditional: bool, benchmark: Benchmark | None = None
) -> dict[str, Any]:
    """Overall, per class, per number of active sources and per task means (dB); the FUSS
    summary (MSi, SS, separation rates) for unconditional models and the FUSS benchmark; and
    `benchmark_summary` when a benchmark is given."""
    sources = [s for e in examples for s in e["sources"]]
    by_class: dict[str, list] = defaultdict(list)
    for s in sources:
        by_class[s["class"]].append(s)
    by_count: dict[int, list] = defaultdict(list)
    for e in examples:
        by_count[e["n_sources"]].append(e)
    by_task: dict[str, list] = defaultdict(list)
    for e in examples:
        by_task[e["task"]].append(e)
    tasks = {}
    for task in TASKS:
        if task not in by_task:
            continue
        metric = TASK_METRIC[task]
        group = [s for e in by_task[task] for s in e["sources"]]
        tasks[task] = {
            "metric": metric,
            "score": _mean(s[metric] for s in group),
            "improvement": _mean(s[metric + "i"] for s in group),
            **_aggregate(group, len(by_task[task])),
        }
    summary: dict[str, Any] = {
        "overall": _aggregate(sources, len(examples)),
        "tasks": tasks,
        "per_class": {c: _aggregate(by_class[c]) for c in sorted(by_class)},
        "per_num_sources": {
            str(n): _aggregate([s for e in by_count[n] for s in e["sources"]], len(by_count[n]))
            for n in sorted(by_count)
        },
    }
    if unconditional or (benchmark is not None and benchmark.fuss):
        multi = [s for e in examples if 2 <= e["n_sources"] <= 4 for s in e["sources"]]
        single = [s for e in examples if e["n_sources"] == 1 for s in e["sources"]]
        seen = Counter(e["separation"] for e in examples)
        count = max(1, len(examples))
        summary["fuss"] = {
            "msi": _mean(s["si_snri"] for s in multi),
            "msi_sources": len(multi),
            "ss": _mean(s["si_snr"] for s in single),
            "ss_examples": len(single),
            # GASS reports single-source inputs by class too
            "ss_per_class": {
                c: _mean(s["si_snr"] for s in single if s["class"] == c)
                for c in sorted({s["class"] for s in single})
            },
            **{f"{k}_separation": seen[k] / count for k in ("under", "equal", "over")},
        }
    if benchmark is not None:
        summary["benchmark"] = benchmark_summary(examples, benchmark)
    return summary
