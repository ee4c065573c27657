"""Plot TensorBoard scalars of one or more runs into a PNG (for docs/results.md).

    python -m benchmarks.curves OUT.png RUN_DIR[:LABEL] ... --tags val/si_snri train/mixit

One panel per tag, one line per run. Needs matplotlib (`pip install -e ".[docs]"`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def read_scalars(run_dir: Path, tags: list[str]) -> dict[str, list[tuple[int, float]]]:
    """(step, value) pairs of each tag found in `run_dir/tensorboard`."""
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    available = set(events.Tags()["scalars"])
    return {t: [(e.step, e.value) for e in events.Scalars(t)] for t in tags if t in available}


def plot(out: Path, runs: list[tuple[Path, str]], tags: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tags), figsize=(4.2 * len(tags), 3.2), squeeze=False)
    for run_dir, label in runs:
        scalars = read_scalars(run_dir, tags)
        for ax, tag in zip(axes[0], tags, strict=True):
            if tag in scalars:
                steps, values = zip(*scalars[tag], strict=True)
                ax.plot(steps, values, label=label, marker="o" if len(steps) < 20 else None)
    for ax, tag in zip(axes[0], tags, strict=True):
        ax.set_title(tag)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if len(runs) > 1:
        axes[0][0].legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", nargs="+", help="RUN_DIR or RUN_DIR:LABEL")
    parser.add_argument("--tags", nargs="+", required=True)
    args = parser.parse_args()
    runs = [
        (Path(r.split(":")[0]), r.split(":", 1)[1] if ":" in r else Path(r).name) for r in args.runs
    ]
    plot(args.out, runs, args.tags)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
