"""Forward+backward time and peak memory of the separation models.

Cases (issue #4): locoformer-m on 4 s at 8 kHz, batch 1; backbone-medium and tuss-medium (2 and
4 prompts) on 6 s at 48 kHz, batch 4. On CPU the inputs are shortened and the batch is 1
(`--seconds-scale`, `--batch`), so a run takes minutes rather than hours. Demucs (stereo,
44.1 kHz) runs on the backbone's 6 s, shortened alike, and on 10 s — the public release's
training length as recalled (reference.md gives none) — which stays full length on CPU too.

    python -m benchmarks.models                                      # CPU, reduced size
    python -m benchmarks.models --device cuda --dtype bf16 --compile # full size, eager + compiled

    python -m benchmarks.models --speedup                            # today's blocks vs baseline

Each case runs in a fresh process. Peak memory: on CUDA, `torch.cuda.max_memory_allocated`
during one forward+backward minus what was allocated before it (weights, inputs); on CPU, the
growth of the process's peak resident set (VmHWM, reset through /proc/self/clear_refs) over the
first forward+backward, which includes allocator caching and is coarser than the CUDA figure.
Writes the section `models-<device>` of docs/benchmarks.md unless `--no-write`.

`--speedup` times tuss-medium (1 s at 48 kHz, 3 prompts, B = 1) and its hot blocks with today's
implementation and with the one before the CPU speed-up (`benchmarks/baseline.py`, same
weights), alternating the two in one process, and writes the section `models-speedup-<device>`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.baseline import as_baseline
from benchmarks.report import machine_description, markdown_table, time_call, write_section
from wildsep.models import (
    TUSS,
    band_widths,
    from_preset,
)


@dataclass(frozen=True)
class Case:
    preset: str
    sample_rate: int
    seconds: float  # full-size duration
    batch: int  # full-size batch
    prompts: tuple[str, ...] = ()
    shorten_on_cpu: bool = True  # False: the full duration even on CPU (batch still 1)


CASES = [
    Case("locoformer-m", 8000, 4.0, 1),
    Case("backbone-medium", 48000, 6.0, 4),
    Case("tuss-medium", 48000, 6.0, 4, ("speech", "sfx")),
    Case("tuss-medium", 48000, 6.0, 4, ("speech", "sfx", "speech", "musicbg")),
    Case("demucs", 44100, 6.0, 4),
    Case("demucs-small", 44100, 10.0, 4, shorten_on_cpu=False),
    Case("demucs", 44100, 10.0, 4, shorten_on_cpu=False),
]


def _vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def run_case(
    case: Case,
    device: str,
    dtype: str,
    compiled: bool,
    seconds: float,
    batch: int,
    repeats: int,
    overrides: dict[str, object] | None = None,
    backend: str = "inductor",
) -> dict[str, float]:
    """Time and peak memory of one case; runs inside a fresh worker process. `overrides`
    change the preset's config (the GPU script's CPU smoke run shrinks the models), `backend`
    is torch.compile's."""
    torch.manual_seed(0)
    model = from_preset(case.preset, **(overrides or {})).to(device)
    args = (model.prompt_ids(list(case.prompts)),) if isinstance(model, TUSS) else ()
    params = sum(p.numel() for p in model.parameters())
    if compiled:
        model = torch.compile(model, backend=backend)
    channels = getattr(model.config, "audio_channels", 1)  # Demucs: stereo, (B, 2, T)
    shape = (batch, channels) if channels > 1 else (batch,)
    mix = torch.randn(*shape, int(seconds * case.sample_rate), device=device)

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            est = model(mix, *args)
        est.square().mean().backward()
        model.zero_grad(set_to_none=True)

    if device == "cuda":
        step()  # compile / cudnn autotuning outside the measurement
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = _vm_kib("VmRSS")
        step()
        peak = (_vm_kib("VmHWM") - before) * 1024
    return {
        "params": params,
        "channels": channels,
        "seconds": time_call(step, repeats=repeats, warmup=1),
        "peak_bytes": peak,
    }


def paired_times(
    fns: dict[str, Callable[[], object]], repeats: int, device: str
) -> dict[str, float]:
    """Median seconds of each function, run alternately (so load changes hit all alike)."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def fwd_bwd(module: nn.Module, *inputs: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        module(*inputs).square().mean().backward()
        module.zero_grad(set_to_none=True)

    return step


def speedup(device: str, repeats: int) -> str:
    """Table of fwd+bwd times, baseline vs today, for tuss-medium and its hot blocks."""
    torch.manual_seed(0)
    tuss = from_preset("tuss-medium").to(device)
    prompts = tuss.prompt_ids(["speech", "sfx", "musicbg"]).to(device)
    mix = torch.randn(1, 48000, device=device)
    frames = 48000 // tuss.config.hop + 1  # 94 STFT frames; + 3 prompts + SOS in the cross blocks
    bands = len(band_widths(48000, tuss.config.n_fft))
    dim = tuss.config.dim

    def x(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device=device)

    block = tuss.cross_blocks[0].freq  # the cross-prompt frequency path: (98 frames, 61 bands)
    cases = [
        ("tuss-medium: 1 s @ 48 kHz, 3 prompts, B = 1", tuss, (mix, prompts)),
        ("ConvSwiGLU (98 × 61, 64 → 2·384)", block.ffn1, (x(frames + 4, bands, dim),)),
        ("attention + RoPE (98 × 61, 4 heads, A = 128)", block.attn, (x(frames + 4, bands, dim),)),
        ("RMSGroupNorm (98 × 61 × 64, G = 8)", block.norm_attn, (x(frames + 4, bands, dim),)),
        (
            "band mask decoder (3 × 94 × 61 bands → 1025 bins)",
            tuss.decoder,
            (x(3, frames, bands, dim),),
        ),
    ]
    flops = FlopCounterMode(display=False)
    with flops:
        fwd_bwd(tuss, mix, prompts)()
    rows = []
    for name, module, inputs in cases:
        times = paired_times(
            {"baseline": fwd_bwd(as_baseline(module), *inputs), "now": fwd_bwd(module, *inputs)},
            repeats,
            device,
        )
        rows.append(
            [
                name,
                f"{times['baseline'] * 1e3:.0f}",
                f"{times['now'] * 1e3:.0f}",
                f"{times['baseline'] / times['now']:.2f}×",
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
        if module is tuss:
            gflop = flops.get_total_flops() / 1e9
            rate = f"{gflop / times['now']:.0f}"
    header = ["fwd + bwd", "baseline (ms)", "now (ms)", "speed-up"]
    return "\n\n".join(
        [
            f"### Models: CPU speed-up of the hot blocks ({device})",
            f"Machine: {machine_description()}. `python -m benchmarks.models --speedup`: the"
            " baseline is the block code before the speed-up (`benchmarks/baseline.py`), run"
            " with the same weights, alternating with today's code in one process; medians of"
            f" {repeats} runs after a warm-up. The whole model does {gflop:.0f} GFLOP per"
            f" forward + backward ({rate} GFLOP/s now).",
            markdown_table(header, rows),
        ]
    )


def case_row(
    case: Case, result: dict[str, float], dtype: str, compiled: bool, seconds: float, batch: int
) -> list[str]:
    """The table row of one measured case."""
    return [
        case.preset,
        f"{batch} × {seconds:.3g} s @ {case.sample_rate / 1000:.3g} kHz"
        + (" stereo" if result["channels"] == 2 else ""),
        str(len(case.prompts) or "–"),
        f"{dtype}, {'compiled' if compiled else 'eager'}",
        f"{result['params'] / 1e6:.2f}M",
        f"{result['seconds'] * 1e3:.0f}",
        f"{result['peak_bytes'] / 2**20:.0f}",
    ]


def section_body(rows: list[list[str]], device: str, repeats: int, note: str = "") -> str:
    """The `models-<device>` section of docs/benchmarks.md for `case_row` rows."""
    cpu = device == "cpu"
    memory = "CUDA max allocated" if not cpu else "peak RSS growth"
    header = ["model", "input", "prompts", "mode", "params", "fwd+bwd (ms)", f"{memory} (MiB)"]
    return "\n\n".join(
        [
            f"### Models: forward + backward ({device})",
            f"Machine: {machine_description()}. Median of {repeats} runs after one warm-up;"
            " one forward + backward of a mean-square loss per run, each case in a fresh process."
            + (
                " CPU inputs are shortened (×1/12 of the issue's lengths by default) with batch 1,"
                " except the 10 s Demucs rows;"
                " memory is the growth of the process's peak RSS over the first step (includes"
                " allocator caching)."
                if cpu
                else " Memory is `torch.cuda.max_memory_allocated` minus weights and inputs."
            )
            + (f" {note}" if note else ""),
            markdown_table(header, rows),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default=None, choices=["fp32", "bf16"], help="cuda: bf16")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--seconds-scale", type=float, default=None, help="cpu: 1/12")
    parser.add_argument("--batch", type=int, default=None, help="cpu: 1; cuda: as in the issue")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--speedup", action="store_true", help="baseline vs today's blocks")
    args = parser.parse_args()
    if args.speedup:
        body = speedup(args.device, args.repeats)
        print(body)
        if not args.no_write:
            write_section(f"models-speedup-{args.device}", body)
        return
    cpu = args.device == "cpu"
    dtype = args.dtype or ("fp32" if cpu else "bf16")
    scale = args.seconds_scale or (1 / 12 if cpu else 1.0)

    rows = []
    spawn = multiprocessing.get_context("spawn")  # a fresh process per case: clean peak memory
    for case in CASES:
        shorten = cpu and case.shorten_on_cpu
        seconds = case.seconds * (scale if shorten else 1.0)
        batch = args.batch or (1 if cpu else case.batch)
        for compiled in [False, True] if args.compile else [False]:
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
                result = pool.submit(
                    run_case, case, args.device, dtype, compiled, seconds, batch, args.repeats
                ).result()
            rows.append(case_row(case, result, dtype, compiled, seconds, batch))
            print(" | ".join(rows[-1]), flush=True)

    body = section_body(rows, args.device, args.repeats)
    print(body)
    if not args.no_write:
        write_section(f"models-{args.device}", body)


if __name__ == "__main__":
    main()
