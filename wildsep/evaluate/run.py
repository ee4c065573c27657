"""Score a separation model on an evaluation manifest (mixtures with references and classes).

    python -m wildsep.evaluate CKPT --set test/manifest.jsonl [--out DIR] [--max-examples N]

- Prompted models (TUSS): the prompts are the example's classes; estimates are matched to the
  references by PIT (negative SI-SNR) inside groups of identical classes, so two `speech`
  outputs may swap but a `speech` and an `sfx` output never do.
- Unconditional models: each active reference gets a distinct output (Hungarian on SI-SNR),
  FUSS-style; plus MSi, SS and under/equal/over-separation rates.

Silent references are not scored. Metrics per source: SI-SNR, SI-SNRi, SNR, SNRi at the model's
sample rate (the set is resampled and down-mixed to mono). Summaries: overall, per class, per
number of sources, and per task as the TUSS paper reports them (`classify_task`). Long
mixtures go through the chunked `Separator`. See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from losses import pit, si_snr
from wildsep.data.evalset import EvalSetDataset
from wildsep.inference import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_SEGMENT,
    DEFAULT_SHIFT,
    CheckpointError,
    Separator,
)
from wildsep.metrics import active_references, match_outputs, separation_counts, source_metrics

DESCRIPTION = "Score a model on an evaluation manifest; writes metrics.json and metrics.md."
METRICS = ("si_snr", "si_snri", "snr", "snri")
LABELS = {"si_snr": "SI-SNR", "si_snri": "SI-SNRi", "snr": "SNR", "snri": "SNRi"}
STEMS = frozenset({"vocals", "bass", "drums", "other"})
# Tasks in the order of the TUSS paper's tables; "mixed" holds every other class combination.
TASKS = ("SE", "SS", "USS", "MSS", "CASS", "mixed")
# MSS is reported in SNR, as the paper (and music separation generally) does.
TASK_METRIC = {task: ("snr" if task == "MSS" else "si_snr") for task in TASKS}


class EvaluationError(ValueError):
    """The set and the model do not fit together, or the set cannot be read; one line."""


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


def score_example(separator: Separator, item: dict[str, Any]) -> dict[str, Any]:
    """Separate one evaluation item (`EvalSetDataset` at the model's rate, mono) and score it:
    the per-example row of metrics.json."""
    mixture, refs, classes = item["mixture"], item["references"], item["classes"]
    unconditional = separator.prompts is None
    est = separator.separate(mixture, separator.sample_rate, None if unconditional else classes)
    est = est[:, 0]  # (K, 1, T) → (K, T)
    row: dict[str, Any] = {"name": item["name"], "classes": classes}
    if unconditional:
        row["sources"], active_outputs = score_unconditional(est, refs, mixture, classes)
    else:
        row["sources"] = score_prompted(est, refs, mixture, classes)
    row["n_sources"] = len(row["sources"])
    row["task"] = classify_task(classes)
    if unconditional:
        n = row["n_sources"]
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


def summarise(examples: list[dict[str, Any]], unconditional: bool) -> dict[str, Any]:
    """Overall, per class, per number of active sources and per task means (dB); for
    unconditional models also the FUSS summary (MSi, SS, separation rates)."""
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
    if unconditional:
        multi = [s for e in examples if 2 <= e["n_sources"] <= 4 for s in e["sources"]]
        single = [s for e in examples if e["n_sources"] == 1 for s in e["sources"]]
        seen = Counter(e["separation"] for e in examples)
        count = max(1, len(examples))
        summary["fuss"] = {
            "msi": _mean(s["si_snri"] for s in multi),
            "msi_sources": len(multi),
            "ss": _mean(s["si_snr"] for s in single),
            "ss_examples": len(single),
            **{f"{k}_separation": seen[k] / count for k in ("under", "equal", "over")},
        }
    return summary


# ---------------------------------------------------------------------------------------------
# Running a set


def _separator(
    model_or_dir: Separator | nn.Module | str | Path, device: str | torch.device | None, **kwargs
) -> tuple[Separator, str]:
    """A Separator for what `evaluate` was given, and a name for the report."""
    if isinstance(model_or_dir, Separator):
        return model_or_dir, type(model_or_dir.model).__name__
    try:
        if isinstance(model_or_dir, nn.Module):
            # A model handed over by a training loop stays on its device.
            parameter = next(model_or_dir.parameters(), None)
            if device is None and parameter is not None:
                device = parameter.device
            return Separator(model_or_dir, device, **kwargs), type(model_or_dir).__name__
        return Separator.from_pretrained(model_or_dir, device, **kwargs), str(model_or_dir)
    except CheckpointError:
        raise
    except ValueError as err:  # bad segment/shift/device
        raise EvaluationError(str(err)) from None


def _check_compatible(rows: list[dict[str, Any]], separator: Separator, manifest: Path) -> None:
    """Fail before separating anything when the set asks what the model cannot do."""
    if separator.prompts is not None:
        needed = sorted({c for row in rows for c in row["classes"]})
        unknown = sorted(set(needed) - set(separator.prompts))
        if unknown:
            raise EvaluationError(
                f"{manifest} has classes {unknown} that are not prompts of this model; "
                f"the set's classes: {needed}; the model's prompts: {list(separator.prompts)}"
            )
        return
    outputs = separator.n_outputs(None)
    most = max(len(row["classes"]) for row in rows)
    if most > outputs:
        raise EvaluationError(
            f"{manifest} has mixtures with up to {most} references but this unconditional "
            f"model has only {outputs} outputs"
        )


def set_name(manifest: str | Path) -> str:
    """`test/manifest.jsonl` → "test"; `fuss_eval.jsonl` → "fuss_eval"."""
    path = Path(manifest)
    return path.parent.name if path.stem == "manifest" else path.stem


def evaluate(
    model_or_dir: Separator | nn.Module | str | Path,
    manifest: str | Path,
    *,
    out: str | Path | None = None,
    max_examples: int | None = None,
    device: str | torch.device | None = None,
    segment: float = DEFAULT_SEGMENT,
    shift: float = DEFAULT_SHIFT,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate a model on an evaluation manifest (docs/data.md) and return the results.

    Args:
        model_or_dir: a `Separator`, a model, or an exported model folder / run directory.
        manifest: JSON-lines evaluation set.
        out: when given, write `metrics.json` and `metrics.md` there.
        max_examples: score only the first N mixtures.
        device: where to run; default the model's own device for a model, else the GPU
            when there is one.
        segment, shift, batch_size: as in `Separator` (ignored when given a `Separator`).
    Returns:
        {"model", "manifest", "set", "sample_rate", "kind", "examples": [per-example rows],
        "summary": see `summarise`} — exactly what metrics.json holds. A model passed in is
        left in the train/eval mode it came in.
    """
    was_training = isinstance(model_or_dir, nn.Module) and model_or_dir.training
    separator, model_name = _separator(
        model_or_dir, device, segment=segment, shift=shift, batch_size=batch_size
    )
    try:
        return _evaluate(
            separator, model_name, Path(manifest).expanduser(), out, max_examples, progress
        )
    finally:
        separator.model.train(was_training)  # a training loop gets its model back as it was


def _evaluate(
    separator: Separator,
    model_name: str,
    manifest: Path,
    out: str | Path | None,
    max_examples: int | None,
    progress: bool,
) -> dict[str, Any]:
    try:
        dataset = EvalSetDataset(manifest, separator.sample_rate, channels="mono")
    except (FileNotFoundError, ValueError) as err:
        raise EvaluationError(str(err)) from None
    if max_examples is not None and max_examples < 1:
        raise EvaluationError(f"max_examples must be at least 1, got {max_examples}")
    count = len(dataset) if max_examples is None else min(max_examples, len(dataset))
    _check_compatible(dataset.rows[:count], separator, manifest)
    unconditional = separator.prompts is None

    examples = []
    for i in tqdm(range(count), desc="evaluating", unit="mixture", disable=not progress):
        try:
            item = dataset[i]
        except (RuntimeError, OSError) as err:  # soundfile's errors derive from these
            raise EvaluationError(f"{manifest}: mixture {i}: {err}") from None
        examples.append(score_example(separator, item))

    result = {
        "model": model_name,
        "model_class": type(separator.model).__name__,
        "manifest": str(manifest),
        "set": set_name(manifest),
        "sample_rate": separator.sample_rate,
        "kind": "unconditional" if unconditional else "prompted",
        "examples": examples,
        "summary": summarise(examples, unconditional),
    }
    if out is not None:
        write_results(result, out)
    return result


# ---------------------------------------------------------------------------------------------
# Reports


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


# ---------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="exported model folder or run folder")
    parser.add_argument("--set", required=True, dest="manifest", help="evaluation manifest")
    parser.add_argument("--out", default=None, help="output folder (default CKPT/eval_<set>/)")
    parser.add_argument("--max-examples", type=int, default=None, help="score the first N only")
    parser.add_argument("--segment", type=float, default=DEFAULT_SEGMENT, help="chunk seconds")
    parser.add_argument("--shift", type=float, default=DEFAULT_SHIFT, help="hop seconds")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--device", default=None, help="cpu, cuda (default: GPU if any)")


def run_command(args: argparse.Namespace) -> int:
    """`wildsep evaluate` / `python -m wildsep.evaluate`: returns the exit status."""
    out = args.out or Path(args.checkpoint).expanduser() / f"eval_{set_name(args.manifest)}"
    try:
        result = evaluate(
            args.checkpoint,
            args.manifest,
            out=out,
            max_examples=args.max_examples,
            device=args.device,
            segment=args.segment,
            shift=args.shift,
            batch_size=args.batch_size,
            progress=True,
        )
    except (CheckpointError, EvaluationError) as err:
        print(f"wildsep: error: {err}", file=sys.stderr)
        return 2
    print(to_markdown(result))
    print(f"wrote {Path(out) / 'metrics.json'} and metrics.md", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wildsep.evaluate", description=DESCRIPTION)
    add_arguments(parser)
    return run_command(parser.parse_args(argv))

