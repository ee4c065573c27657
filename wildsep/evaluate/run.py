"""Score a separation model on an evaluation manifest (mixtures with references and classes).

    python -m wildsep.evaluate CKPT --set test/manifest.jsonl [--out DIR] [--max-examples N]

Metrics per source: SI-SNR, SI-SNRi, SNR, SNRi at the model's sample rate (the set is resampled
and down-mixed to mono); how examples are scored is in `wildsep.evaluate.score`, the reports in
`wildsep.evaluate.report`. Long mixtures go through the chunked `Separator`. See
docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from wildsep.data.evalset import EvalSetDataset
from wildsep.evaluate.protocols import BENCHMARKS, Benchmark, get_benchmark
from wildsep.evaluate.report import to_markdown, write_results
from wildsep.evaluate.score import score_example, summarise
from wildsep.inference import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_SEGMENT,
    DEFAULT_SHIFT,
    CheckpointError,
    Separator,
)

DESCRIPTION = "Score a model on an evaluation manifest; writes metrics.json and metrics.md."


class EvaluationError(ValueError):
    """The set and the model do not fit together, or the set cannot be read; one line."""


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


def _check_benchmark(rows: list[dict[str, Any]], benchmark: Benchmark, manifest: Path) -> None:
    """Fail before separating anything when a mixture is not of the benchmark's task."""
    for number, row in enumerate(rows, 1):
        if not benchmark.check_classes(row["classes"]):
            raise EvaluationError(
                f"{manifest}: mixture {number} has classes {row['classes']} but the "
                f"{benchmark.name} benchmark ({benchmark.task}) expects {benchmark.expected()}; "
                f"prepare its set with `wildsep prepare {benchmark.recipe}`"
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
    benchmark: str | Benchmark | None = None,
    outputs: Sequence[str] | None = None,
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
        benchmark: a protocol of `wildsep.evaluate.protocols` (or its name): every mixture
            must be of its task, and the summary gains its score next to the paper's.
        outputs: names of an unconditional model's outputs in order (e.g. drums, bass,
            vocals, other for a backbone trained on fixed stems); default the model's own
            `sources`. Examples whose classes are all named are scored output by name.
    Returns:
        {"model", "manifest", "set", "sample_rate", "kind", "examples": [per-example rows],
        "summary": see `summarise`, "benchmark": its name or None} — exactly what
        metrics.json holds. A model passed in is left in the train/eval mode it came in.
    """
    if isinstance(benchmark, str):
        try:
            benchmark = get_benchmark(benchmark)
        except ValueError as err:
            raise EvaluationError(str(err)) from None
    was_training = isinstance(model_or_dir, nn.Module) and model_or_dir.training
    separator, model_name = _separator(
        model_or_dir, device, segment=segment, shift=shift, batch_size=batch_size
    )
    try:
        return _evaluate(
            separator,
            model_name,
            Path(manifest).expanduser(),
            out,
            max_examples,
            progress,
            benchmark,
            outputs,
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
    benchmark: Benchmark | None,
    outputs: Sequence[str] | None = None,
) -> dict[str, Any]:
    try:
        dataset = EvalSetDataset(manifest, separator.sample_rate, channels="mono")
    except (FileNotFoundError, ValueError) as err:
        raise EvaluationError(str(err)) from None
    if max_examples is not None and max_examples < 1:
        raise EvaluationError(f"max_examples must be at least 1, got {max_examples}")
    count = len(dataset) if max_examples is None else min(max_examples, len(dataset))
    if benchmark is not None:
        _check_benchmark(dataset.rows[:count], benchmark, manifest)
        if benchmark.sdr_window is not None and importlib.util.find_spec("fast_bss_eval") is None:
            raise EvaluationError(
                f"the {benchmark.name} benchmark reports BSS-eval SDR, which needs fast_bss_eval: "
                "pip install 'wildsep[eval]'"
            )
    _check_compatible(dataset.rows[:count], separator, manifest)
    if outputs is not None and (
        separator.prompts is not None or len(outputs) != separator.n_outputs(None)
    ):
        raise EvaluationError(
            f"outputs {list(outputs)} must name each output of an unconditional model"
            + ("" if separator.prompts is not None else f" ({separator.n_outputs(None)})")
        )
    unconditional = separator.prompts is None

    examples = []
    for i in tqdm(range(count), desc="evaluating", unit="mixture", disable=not progress):
        try:
            item = dataset[i]
        except (RuntimeError, OSError) as err:  # soundfile's errors derive from these
            raise EvaluationError(f"{manifest}: mixture {i}: {err}") from None
        examples.append(score_example(separator, item, benchmark, outputs))

    result = {
        "model": model_name,
        "model_class": type(separator.model).__name__,
        "manifest": str(manifest),
        "set": set_name(manifest),
        "sample_rate": separator.sample_rate,
        "kind": "unconditional" if unconditional else "prompted",
        "benchmark": None if benchmark is None else benchmark.name,
        "examples": examples,
        "summary": summarise(examples, unconditional, benchmark),
    }
    if out is not None:
        write_results(result, out)
    return result


# ---------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", metavar="CKPT", help="exported model folder, run folder or hub org/name"
    )
    parser.add_argument(
        "--set",
        required=True,
        dest="manifest",
        help="evaluation manifest; with --benchmark also the folder `wildsep prepare` wrote",
    )
    parser.add_argument(
        "--benchmark",
        choices=list(BENCHMARKS),
        default=None,
        help="apply a TUSS-paper task protocol (prompts, metric, conventions)",
    )
    parser.add_argument(
        "--outputs",
        default=None,
        help="comma-separated names of an unconditional model's outputs (e.g. "
        "drums,bass,vocals,other): references are scored against the output of their class",
    )
    parser.add_argument("--out", default=None, help="output folder (default CKPT/eval_<set>/)")
    parser.add_argument("--max-examples", type=int, default=None, help="score the first N only")
    parser.add_argument("--segment", type=float, default=DEFAULT_SEGMENT, help="chunk seconds")
    parser.add_argument("--shift", type=float, default=DEFAULT_SHIFT, help="hop seconds")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--device", default=None, help="cpu, cuda (default: GPU if any)")


def run_command(args: argparse.Namespace) -> int:
    """`wildsep evaluate` / `python -m wildsep.evaluate`: returns the exit status."""
    manifest = Path(args.manifest).expanduser()
    benchmark = args.benchmark
    if benchmark is not None and manifest.is_dir():  # the folder of `wildsep prepare`
        manifest = manifest / get_benchmark(benchmark).set_file
    out = args.out
    if out is None:
        checkpoint = Path(args.checkpoint).expanduser()
        name = f"eval_{set_name(manifest)}"
        # A hub model (org/name) has no folder here: its results go to the current folder.
        out = checkpoint / name if checkpoint.is_dir() else Path(f"{name}_{checkpoint.name}")
    try:
        result = evaluate(
            args.checkpoint,
            manifest,
            benchmark=benchmark,
            out=out,
            max_examples=args.max_examples,
            device=args.device,
            segment=args.segment,
            shift=args.shift,
            batch_size=args.batch_size,
            progress=True,
            outputs=args.outputs.split(",") if args.outputs else None,
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
