"""Every GPU number of docs/benchmarks.md from one run on one GPU, in at most 8 minutes.

    python -m benchmarks.gpu                                  # on the GPU; writes the tables
    python -m benchmarks.gpu --tiny --device cpu --no-write   # the smoke run of the tests

Measures, in this order (what matters most first; the compiled models last, skipped when the
time budget cannot hold them, and the table says so):

1. MixIT loss on the GPU: `benchmarks.losses` (section `losses-cuda`);
2. pre-training throughput of `configs/mixit_yfcc.yaml`: the real recipe (`pretrain/run.py`:
   loader workers, bf16, exact MixIT with M = 8, sparsity, covariance, clipping, AdamW) on a
   generated corpus of noise WAVs; audio-hours per GPU-hour, steps/s, peak memory and the
   model FLOPs utilisation (FLOPs of one forward + backward counted by
   `torch.utils.flop_counter`, over the GPU's dense bf16 peak);
3. TUSS-medium step time at the paper's batch and length (`configs/tuss_medium.yaml`: batch 4
   of 6 s at 48 kHz, 2–4 prompts) with `finetune/tuss.py` on generated class pools
   (section `gpu-training`);
4. full-size models forward + backward in bf16, eager, then `torch.compile`
   (`benchmarks.models`, section `models-cuda`).

Each recipe and model case runs in a fresh process (clean peak memory). Throughputs are the
trainer's own `metrics.jsonl` figures over a window of steps after a warm-up window.
`--tiny` shrinks every size (a tiny model geometry at 8 kHz, short clips, few steps, no
workers, float32, torch.compile with the `eager` backend) so the whole script runs on a CPU in
a test and cannot rot; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import losses, models
from benchmarks.report import BENCHMARKS_MD, machine_description, markdown_table, write_section
from wildsep.models import from_preset

ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 8 * 60
PAPER_PROMPTS = ["speech", "sfx", "sfxbg", "drums", "bass", "vocals", "other", "musicbg"]

# Dense bf16 peak (tensor cores, no sparsity) by device name, first match wins; for the MFU.
PEAK_BF16_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10", 125.0),
]

# --tiny: a separator geometry that runs in milliseconds on a CPU (the tests' tiny layout).
TINY_MODEL = dict(
    sample_rate=8000,
    n_fft=128,
    hop=64,
    dim=16,
    heads=2,
    groups=4,
    cross_blocks=1,
    cross_attn_dim=16,
    cross_ffn_hidden=32,
    tse_blocks=1,
    tse_attn_dim=16,
    tse_ffn_hidden=32,
)
TINY_OVERRIDES = {  # per preset, for the models section
    "locoformer-m": dict(sample_rate=8000, dim=16, n_blocks=1, attn_dim=16, ffn_hidden=32),
    "backbone-medium": TINY_MODEL,
    "tuss-medium": TINY_MODEL,
    "demucs": dict(sample_rate=8000, channels=4, depth=3),
    "demucs-small": dict(sample_rate=8000, channels=4, depth=3),
}


@dataclass(frozen=True)
class Sizes:
    """What one run measures at: the real sizes on a GPU, tiny ones for the CPU smoke run."""

    tiny: bool
    device: str
    steps: int  # trainer steps per window; two windows, the first a warm-up
    data_seconds: float  # length of each generated file
    files: int  # generated files (corpus) or files per class (pools)
    corpus_rows: int  # rows of the corpus manifest, cycling over the files

    @property
    def rate(self) -> int:
        return 8000 if self.tiny else 48000

    def recipe_overrides(self) -> list[str]:
        """Overrides that shrink a recipe for the smoke run (none on the GPU)."""
        if not self.tiny:
            return []
        tiny = [f"model.overrides.{k}={v}" for k, v in TINY_MODEL.items()]
        data = ["data.clips.sample_rate=8000", "data.clips.duration=0.5", "data.batch_size=2"]
        return [*tiny, *data, "data.num_workers=0", "train.precision=no"]


def sizes_for(tiny: bool, device: str) -> Sizes:
    if tiny:
        return Sizes(tiny=True, device=device, steps=2, data_seconds=2.0, files=2, corpus_rows=16)
    return Sizes(tiny=False, device=device, steps=20, data_seconds=30.0, files=12, corpus_rows=4000)


def peak_tflops(device: str) -> float | None:
    """The dense bf16 peak of this GPU, or None (a CPU, an unknown GPU: no MFU)."""
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


# ---------------------------------------------------------------------------------------------
# Generated data


def write_noise(path: Path, seconds: float, rate: int, seed: int) -> None:
    """Mono 16-bit noise, its level drawn between −35 and −15 dBFS, a silent first second."""
    rng = np.random.default_rng(seed)
    audio = rng.standard_normal(round(seconds * rate)) * 10 ** (rng.uniform(-35, -15) / 20)
    audio[: min(rate, len(audio) // 4)] = 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio.astype(np.float32), rate, subtype="PCM_16")


def generate_corpus(folder: Path, sizes: Sizes) -> Path:
    """A CSV manifest whose `rows` cycle over a few generated files: an epoch of MixIT pairs
    files, so a corpus needs many rows for epochs (and loader restarts) to be rare."""
    files = []
    for i in range(sizes.files):
        files.append(folder / f"clip_{i:03d}.wav")
        write_noise(files[-1], sizes.data_seconds, sizes.rate, i)
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path"])
        writer.writerows([str(files[row % len(files)])] for row in range(sizes.corpus_rows))
    return manifest


def generate_pools(folder: Path, sizes: Sizes) -> Path:
    for c, name in enumerate(PAPER_PROMPTS):
        for i in range(max(2, sizes.files // 4)):
            write_noise(folder / name / f"{i:03d}.wav", sizes.data_seconds, sizes.rate, 100 * c + i)
    return folder


# ---------------------------------------------------------------------------------------------
# Training throughput (in a fresh process)


def _peak_bytes(device: str) -> int:
    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def step_flops(preset: str, overrides: dict[str, object], batch: int, frames: int, device: str):
    """FLOPs of one forward + backward of the model at the recipe's batch shape (TUSS with 3
    prompts, the mean of the 2–4 it is trained with)."""
    torch.manual_seed(0)
    model = from_preset(preset, **overrides).to(device)
    mix = torch.randn(batch, frames, device=device)
    args = [model.prompt_ids(["speech", "sfx", "musicbg"]).to(device)] if "tuss" in preset else []
    counter = FlopCounterMode(display=False)
    with counter, torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        model(mix, *args).float().square().mean().backward()
    return counter.get_total_flops()


def run_recipe(recipe: str, argv: list[str], device: str) -> dict[str, object]:
    """Run `pretrain/run.py` or `finetune/tuss.py` with `argv`; the trainer's logged windows,
    the peak memory and the run's config as the recipe saw it."""
    import yaml

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if recipe == "pretrain":
        from pretrain.run import main
    else:
        from finetune.tuss import main
    run_dir = main(argv)
    peak = _peak_bytes(device)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    windows = [r for r in map(json.loads, lines) if "examples_per_s" in r]
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    model = config["model"]
    overrides = dict(model.get("overrides") or {})
    if model.get("prompts"):
        overrides["prompts"] = tuple(model["prompts"])
    batch, clips = config["data"]["batch_size"], config["data"]["clips"]
    frames = round(clips["duration"] * clips["sample_rate"])
    flops = step_flops(model["preset"], overrides, batch, frames, device)
    return {"windows": windows, "peak_bytes": peak, "batch": batch, "flops": flops}


def training_rows(sizes: Sizes, work: Path, deadline: float) -> list[list[str]]:
    """Pre-training (MixIT) and TUSS fine-tuning throughput rows."""
    steps = 2 * sizes.steps
    common = [
        f"train.max_steps={steps}",
        f"train.log_every={sizes.steps}",
        "train.val_every=0",
        f"train.checkpoint_every={steps}",
        "train.keep_last=1",
        "train.average_last=0",
        *sizes.recipe_overrides(),
    ]
    corpus = generate_corpus(work / "corpus", sizes)
    pools = generate_pools(work / "pools", sizes)
    runs = [
        (
            "pre-training, configs/mixit_yfcc.yaml (backbone-medium, M = 8, exact MixIT)",
            "pretrain",
            [
                str(ROOT / "configs" / "mixit_yfcc.yaml"),
                f"run_dir={work / 'run_mixit'}",
                f"data.corpus.source={corpus}",
                f"data.corpus.cache_dir={work / 'cache'}",
                "validation.mom_batches=1",
                *common,
            ],
        ),
        (
            "TUSS-medium, configs/tuss_medium.yaml (2–4 prompts)",
            "tuss",
            [
                str(ROOT / "configs" / "tuss_medium.yaml"),
                f"run_dir={work / 'run_tuss'}",
                f"data.pools.source={pools}",
                f"data.pools.cache_dir={work / 'cache'}",
                *common,
            ],
        ),
    ]
    peak = peak_tflops(sizes.device)
    rows = []
    for name, recipe, argv in runs:
        result = in_fresh_process(run_recipe, deadline, recipe, argv, sizes.device)
        if result is None:
            rows.append([name, "skipped: out of time", *["—"] * 5])
            continue
        last = result["windows"][-1]  # the window after the warm-up one
        steps_per_s = last["examples_per_s"] / result["batch"]
        tflops = result["flops"] * steps_per_s / 1e12
        rows.append(
            [
                name,
                f"{result['batch']} × {last['audio_seconds_per_s'] / last['examples_per_s']:g} s",
                f"{last['audio_seconds_per_s']:.4g}",
                f"{steps_per_s:.2f} ({1e3 / steps_per_s:.0f} ms)",
                f"{result['peak_bytes'] / 2**30:.2f}",
                f"{result['flops'] / 1e9:.0f} GFLOP · {tflops:.1f} TFLOP/s",
                "—" if peak is None else f"{100 * tflops / peak:.1f}%",
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# Plumbing


def in_fresh_process(fn: Callable[..., object], deadline: float, *args: object):
    """`fn(*args)` in a spawned process; None when the budget has run out before or during."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    spawn = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn)
    try:
        return pool.submit(fn, *args).result(timeout=remaining)
    except concurrent.futures.TimeoutError:
        for process in list(pool._processes.values()):  # a case over budget is stopped
            process.kill()
        return None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def model_rows(sizes: Sizes, deadline: float, compile_reserve_s: float) -> tuple[list, list]:
    """Eager rows of every case, then compiled rows while the budget holds one more."""
    dtype = "fp32" if sizes.tiny else "bf16"
    backend = "eager" if sizes.tiny else "inductor"
    rows, skipped = [], []
    # The smoke run takes one TF-domain and one waveform model: every code path, fewer processes.
    smoke = [
        next(c for c in models.CASES if c.preset == p) for p in ("tuss-medium", "demucs-small")
    ]
    for compiled in (False, True):
        for case in smoke if sizes.tiny else models.CASES:
            seconds = min(case.seconds, 0.05) if sizes.tiny else case.seconds
            batch = 1 if sizes.tiny else case.batch
            overrides = TINY_OVERRIDES.get(case.preset) if sizes.tiny else None
            reserve = compile_reserve_s if compiled else 0.0
            result = None
            if time.monotonic() + reserve < deadline:
                result = in_fresh_process(
                    models.run_case,
                    deadline,
                    case,
                    sizes.device,
                    dtype,
                    compiled,
                    seconds,
                    batch,
                    1 if sizes.tiny else 3,
                    overrides,
                    backend,
                )
            if result is None:
                skipped.append(f"{case.preset} ({'compiled' if compiled else 'eager'})")
                continue
            rows.append(models.case_row(case, result, dtype, compiled, seconds, batch))
            print(" | ".join(rows[-1]), flush=True)
    return rows, skipped


def main(argv: list[str] | None = None) -> dict[str, str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run: tiny sizes")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds in all")
    parser.add_argument(
        "--compile-reserve",
        type=float,
        default=120.0,
        help="seconds a compiled case needs; fewer left: it is skipped",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--md", type=Path, default=BENCHMARKS_MD, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here; run with --tiny --device cpu for the smoke run")
    start = time.monotonic()
    deadline = start + args.budget
    sizes = sizes_for(args.tiny, args.device)
    sections = {}

    length = 1600 if args.tiny else 160000
    loss_rows, verdicts = losses.run(
        batch=4,
        length=length,
        device=args.device,
        naive_max_m=4 if args.tiny else 8,
        repeats=2 if args.tiny else 10,
    )
    sections[f"losses-{args.device}"] = losses.section_body(
        loss_rows, verdicts, length, args.device
    )

    with tempfile.TemporaryDirectory() as tmp:
        train_rows = training_rows(sizes, Path(tmp), deadline)
    header = [
        "run",
        "batch",
        "audio-hours per GPU-hour",
        "steps/s (step time)",
        "peak memory (GiB)",
        "model FLOPs per step · achieved",
        "MFU (bf16 dense peak)",
    ]
    peak = peak_tflops(args.device)
    sections[f"gpu-training-{args.device}"] = "\n\n".join(
        [
            f"### Training throughput on one GPU (`python -m benchmarks.gpu`, {args.device})",
            f"Machine: {machine_description()}. The real recipes on generated noise WAVs (the"
            " configs' loaders, workers, precision, objectives and optimiser), one process each;"
            f" {sizes.steps} steps of warm-up, then the trainer's throughput over {sizes.steps}"
            " steps. Audio-hours are seconds of model input (mixtures of mixtures for MixIT,"
            " which read twice as much corpus audio) per second of this one GPU. FLOPs: one"
            " forward + backward of the model at the batch shape (TUSS with 3 prompts), counted"
            " by `torch.utils.flop_counter`; the loss, optimiser and data are not counted."
            " Memory: `torch.cuda.max_memory_allocated` over the whole run."
            + (f" MFU over a {peak:g} TFLOP/s dense bf16 peak." if peak else "")
            + (" Tiny smoke-run sizes: the numbers mean nothing." if args.tiny else ""),
            markdown_table(header, train_rows),
        ]
    )

    rows, skipped = model_rows(sizes, deadline, 0.0 if args.tiny else args.compile_reserve)
    backend = "eager" if args.tiny else "inductor"
    note = (
        f"`python -m benchmarks.gpu`: eager and `torch.compile` ({backend} backend) at the"
        " full size, batch and length of the issue."
        + (f" Skipped for the {args.budget:.0f} s budget: {', '.join(skipped)}." if skipped else "")
        + (" Tiny smoke-run sizes: the numbers mean nothing." if args.tiny else "")
    )
    repeats = 1 if args.tiny else 3
    sections[f"models-{args.device}"] = models.section_body(rows, args.device, repeats, note)

    elapsed = time.monotonic() - start
    print(f"benchmarks.gpu: {elapsed:.0f} s of a {args.budget:.0f} s budget")
    # Tiny numbers never replace real ones in docs/benchmarks.md (an explicit --md may take them).
    write = not args.no_write and not (args.tiny and args.md == BENCHMARKS_MD)
    for name, body in sections.items():
        print(body, end="\n\n")
        if write:
            write_section(name, body, args.md)
    return sections


if __name__ == "__main__":
    main()
