"""MixIT speed: wildsep's exact and efficient search against the naive per-candidate loop.

The naive implementation is what public reference implementations do: for every candidate
assignment, gather and sum each mixture's group of outputs (`est[:, group].sum(1)`) and evaluate
the waveform loss once, keeping every candidate's graph for backward. Times are forward +
backward, medians, measured side by side in one run.

    python -m benchmarks.losses            # full table, written into docs/benchmarks.md
    python -m benchmarks.losses --quick    # a smaller smoke run, nothing written
"""

from __future__ import annotations

import argparse
import itertools

import torch

from benchmarks.report import machine_description, markdown_table, time_call, write_section
from losses import mixit, thresholded_snr

# Targets of the losses issue on the 2-core development machine, in seconds.
TARGETS = {("exact", 8): 0.020, ("exact", 16): 0.100, ("efficient", 32): 0.060}
MIN_SPEEDUP_EXACT_8 = 200


def naive_mixit(est: torch.Tensor, mixtures: torch.Tensor) -> torch.Tensor:
    """(B,) MixIT loss by evaluating the waveform loss of every candidate, one after another."""
    n, m = mixtures.shape[1], est.shape[1]
    losses = []
    for assignment in itertools.product(range(n), repeat=m):
        groups = [[k for k in range(m) if assignment[k] == i] for i in range(n)]
        remixed = torch.stack([est[:, g].sum(1) if g else est[:, 0] * 0 for g in groups], 1)
        losses.append(thresholded_snr(remixed, mixtures).mean(-1))
    return torch.stack(losses, dim=1).min(1).values


def fwd_bwd(fn, est: torch.Tensor, mixtures: torch.Tensor):
    def step():
        est.grad = None
        fn(est, mixtures).sum().backward()

    return step


def run(
    batch: int, length: int, device: str, naive_max_m: int, repeats: int
) -> tuple[list[list[str]], list[str]]:
    gen = torch.Generator().manual_seed(0)
    rows, verdicts = [], []
    cases = [("exact", m) for m in (4, 8, 12, 16)] + [("efficient", m) for m in (8, 16, 24, 32)]
    naive_times: dict[int, float] = {}
    for method, m in cases:
        est = torch.randn(batch, m, length, generator=gen).to(device).requires_grad_(True)
        mixtures = torch.randn(batch, 2, length, generator=gen).to(device)
        ours = time_call(
            fwd_bwd(lambda e, x, method=method: mixit(e, x, method=method).loss, est, mixtures),
            repeats=repeats,
        )
        naive = None
        if m <= naive_max_m:
            naive = naive_times.get(m)
            if naive is None:
                naive = time_call(fwd_bwd(naive_mixit, est, mixtures), repeats=2, warmup=1)
                naive_times[m] = naive
        rows.append(
            [
                method,
                str(m),
                f"{2**m:,}",
                f"{ours * 1e3:.1f}",
                "—" if naive is None else f"{naive * 1e3:,.0f}",
                "—" if naive is None else f"{naive / ours:,.0f}×",
            ]
        )
        target = TARGETS.get((method, m))
        if target is not None:
            ok = ours <= target
            verdicts.append(
                f"{method} M={m}: {ours * 1e3:.1f} ms (target < {target * 1e3:.0f} ms) "
                + ("✓" if ok else "✗")
            )
        if (method, m) == ("exact", 8) and naive is not None:
            ok = naive / ours >= MIN_SPEEDUP_EXACT_8
            verdicts.append(
                f"exact M=8 speed-up {naive / ours:,.0f}× "
                f"(target ≥ {MIN_SPEEDUP_EXACT_8}×) " + ("✓" if ok else "✗")
            )
    return rows, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 s of audio, no naive M=8, no docs")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    length = 16000 if args.quick else 160000
    rows, verdicts = run(
        batch=4,
        length=length,
        device=args.device,
        naive_max_m=4 if args.quick else 8,
        repeats=3 if args.quick else 10,
    )
    body = section_body(rows, verdicts, length, args.device)
    print(body)
    if not args.quick:
        write_section(f"losses-{args.device}", body)


def section_body(rows: list[list[str]], verdicts: list[str], length: int, device: str) -> str:
    """The `losses-<device>` section of docs/benchmarks.md for `run`'s rows and verdicts."""
    header = ["method", "M", "candidates (N=2)", "wildsep fwd+bwd (ms)", "naive (ms)", "speed-up"]
    return (
        f"## MixIT loss (`benchmarks/losses.py`)\n\n"
        f"B=4, N=2 mixtures, T={length} ({length / 16000:g} s at 16 kHz), forward + backward,"
        f" device `{device}`. Machine: {machine_description()}.\n\n"
        f"{markdown_table(header, rows)}\n\n" + "\n".join(f"- {v}" for v in verdicts)
    )


if __name__ == "__main__":
    main()
