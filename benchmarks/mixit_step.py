"""Whole MixIT pre-training step, exact against efficient MixIT, at M = 4 to 32 outputs.

One step as `pretrain/run.py` takes it on `configs/demo_pretrain.yaml`: the config's model
(backbone-medium with its overrides, built by `wildsep.models.from_preset`) with
`n_outputs = M` separates a batch of mixtures of two mixtures, the config's MixIT objective
(`wildsep.objectives.MixITObjective`: `losses.mixit`, the sparsity term, active-output count)
scores it, then backward, gradient clipping and an AdamW step with the config's settings, as
the trainer does. Only the MixIT method and M change between rows. The loss share times the
objective alone (forward + backward) on one batch of the model's outputs, detached. All rows
are measured side by side in one run; the MoM batch is seeded noise (two mixtures per example
at different levels, one silent in part), which costs the step the same as real audio.

    python -m benchmarks.mixit_step                # full table, written into docs/benchmarks.md
    python -m benchmarks.mixit_step --clock cpu    # CPU time: for a machine loaded by other jobs
    python -m benchmarks.mixit_step --quick        # a tiny smoke run, nothing written
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from benchmarks.report import (
    BENCHMARKS_MD,
    machine_description,
    markdown_table,
    time_call,
    write_section,
)
from pretrain.config import PretrainConfig
from wildsep.config import load_config
from wildsep.models import from_preset, preset_config
from wildsep.objectives import MixITObjective

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo_pretrain.yaml"
ROWS = [
    ("exact", 4),
    ("exact", 8),
    ("efficient", 8),
    ("exact", 16),
    ("efficient", 16),
    ("exact", 32),
    ("efficient", 32),
]
MIXTURES = 2  # MixIT's N: a mixture of two mixtures
# `losses.mixit` refuses exact search above this many candidates (its `max_candidates`): at
# N^M = 2^32 the search alone would need ~8·B·N^(M+1) bytes (over 0.5 TB at B = 8).
EXACT_LIMIT = 2**22
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def mom_batch(batch: int, length: int, device: str) -> dict[str, Tensor]:
    """A seeded MoM batch: "references" (B, 2, T) noise mixtures at levels 0.1–1, the second
    one silent over its first quarter, and their sum "mixture" (B, T)."""
    gen = torch.Generator().manual_seed(0)
    references = torch.randn(batch, MIXTURES, length, generator=gen)
    references *= torch.rand(batch, MIXTURES, 1, generator=gen) * 0.9 + 0.1
    references[:, 1, : length // 4] = 0.0
    references = references.to(device)
    return {"mixture": references.sum(1), "references": references}


def recipe_config(method: str, outputs: int, batch: int, seconds: float) -> PretrainConfig:
    """configs/demo_pretrain.yaml with the row's MixIT method, M and batch shape."""
    return load_config(
        PretrainConfig,
        CONFIG,
        [
            f"model.overrides.n_outputs={outputs}",
            f"stages.0.mixit.method={method}",
            f"data.batch_size={batch}",
            f"data.clips.duration={seconds}",
        ],
    )


def measure(
    config: PretrainConfig, device: str, repeats: int, clock: Callable[[], float]
) -> dict[str, float]:
    """Median seconds of one whole training step and of the objective alone (fwd + bwd)."""
    torch.manual_seed(config.train.seed)
    model = from_preset(config.model.preset, **config.model.overrides).to(device)
    objective = MixITObjective(config.stages[0].mixit).to(device)
    optim = config.train.optim
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay, betas=tuple(optim.betas)
    )
    length = int(config.data.clips.duration * config.data.clips.sample_rate)
    batch = mom_batch(config.data.batch_size, length, device)

    def step() -> None:  # the trainer's step (grad_accum 1): loss, backward, clip, AdamW
        objective(model, batch, 0)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip or math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with torch.no_grad():
        outputs = model(batch["mixture"])
    outputs.requires_grad_(True)

    def loss_only() -> None:  # the objective on fixed outputs: what the step spends beyond them
        outputs.grad = None
        objective(lambda _: outputs, batch, 0)["loss"].backward()

    return {
        "step": time_call(step, repeats=repeats, warmup=1, clock=clock),
        "loss": time_call(loss_only, repeats=repeats, warmup=1, clock=clock),
    }


def run(
    batch: int, seconds: float, device: str, repeats: int, clock: Callable[[], float]
) -> list[list[str]]:
    """The table rows, in `ROWS` order; a row that cannot run says why: exact search over
    `EXACT_LIMIT` candidates, or an M the model's config refuses."""
    times: dict[tuple[str, int], dict[str, float]] = {}
    not_run: dict[tuple[str, int], str] = {}
    for method, outputs in ROWS:
        if method == "exact" and MIXTURES**outputs > EXACT_LIMIT:
            not_run[method, outputs] = f"not run: over `mixit`'s {EXACT_LIMIT:,}-candidate limit"
            continue
        config = recipe_config(method, outputs, batch, seconds)
        try:
            preset_config(config.model.preset, **config.model.overrides)
        except ValueError as error:
            not_run[method, outputs] = f"not run: the model refuses it ({error})"
            continue
        times[method, outputs] = measure(config, device, repeats, clock)
        print(method, outputs, {k: f"{v * 1e3:.1f} ms" for k, v in times[method, outputs].items()})
    reference = times["exact", 8]["step"]
    rows = []
    for method, outputs in ROWS:
        candidates = f"{MIXTURES**outputs:,}"
        if (method, outputs) in not_run:
            rows.append([method, str(outputs), candidates, not_run[method, outputs], "—", "—", "—"])
            continue
        measured = times[method, outputs]
        rows.append(
            [
                method,
                str(outputs),
                candidates,
                f"{measured['step'] * 1e3:.0f}",
                f"{measured['loss'] * 1e3:.1f}",
                f"{measured['loss'] / measured['step']:.1%}",
                f"{measured['step'] / reference:.2f}×",
            ]
        )
    return rows


def section_body(
    rows: list[list[str]],
    batch: int,
    seconds: float,
    device: str,
    repeats: int,
    clock: str,
    note: str,
) -> str:
    """The `mixit-step-<device>` section of docs/benchmarks.md for `run`'s rows."""
    unit = "wall" if clock == "wall" else "CPU"
    header = [
        "MixIT",
        "M",
        "candidates (N=2)",
        f"step ({unit} ms)",
        f"loss fwd+bwd ({unit} ms)",
        "loss share",
        "step vs exact M=8",
    ]
    return "\n\n".join(
        [
            f"## MixIT pre-training step (`python -m benchmarks.mixit_step`, {device})",
            f"Machine: {machine_description()}. One whole step of `pretrain/run.py` on"
            " `configs/demo_pretrain.yaml` (backbone-medium at 8 kHz with its overrides,"
            f" `n_outputs = M`; B = {batch} mixtures of mixtures of {seconds:g} s; MixIT with the"
            " config's sparsity term; backward, gradient clipping, AdamW), only the MixIT method"
            " and M changed. Loss: the objective alone, forward + backward on one batch of the"
            " model's outputs; its share is of the whole step. Medians of"
            f" {repeats} runs after one warm-up, every row in the same run, "
            + (
                "wall time."
                if clock == "wall"
                else "the process's CPU time (user + system), which other jobs do not inflate."
            )
            + (f" {note}" if note else ""),
            markdown_table(header, rows),
        ]
    )


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="MoMs per step (the demo's 8)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length (the demo's 1 s)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", default="wall", choices=sorted(CLOCKS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, nothing written")
    parser.add_argument("--note", default="", help="a sentence on the conditions, in the text")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--md", type=Path, default=BENCHMARKS_MD, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.seconds, args.repeats = 2, 0.1, 1
    rows = run(args.batch, args.seconds, args.device, args.repeats, CLOCKS[args.clock])
    note = args.note + (" Quick smoke-run sizes: the numbers mean nothing." if args.quick else "")
    body = section_body(
        rows, args.batch, args.seconds, args.device, args.repeats, args.clock, note.strip()
    )
    print(body)
    # Quick numbers never replace real ones in docs/benchmarks.md (an explicit --md may take them).
    if not args.no_write and not (args.quick and args.md == BENCHMARKS_MD):
        write_section(f"mixit-step-{args.device}", body, args.md)
    return body


if __name__ == "__main__":
    main()
