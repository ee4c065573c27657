"""Long-file separation: `wildsep separate` on an hour of 44.1 kHz stereo, its speed (× real time)
and its peak resident memory, which must stay under 2 GB whatever the length.

Each case exports a model with random weights (speed and memory do not depend on the weights),
generates a 16-bit stereo WAV of noise at −20 dBFS with a silent minute in every ten, and runs
the real command line in a fresh process with `--device cpu`; that process reports its wall
time, CPU time and peak RSS (`ru_maxrss`). Cases (issue #13, item 5):

- the demo TUSS (geometry of `configs/demo_tuss.yaml`: 8 kHz, D = 32) with two prompts, on the
  whole hour;
- backbone-medium (48 kHz, 8 outputs, 18.7M parameters) on the first `--backbone-seconds`
  of the same audio: it runs several times slower than real time on two cores, so an hour
  would take most of a day; its memory is that of the stream, independent of the length.

    python -m benchmarks.longfile                       # 1 h, 2 threads; writes the table
    python -m benchmarks.longfile --seconds 600 --threads 1 --no-write

Writes the section `longfile-cpu` of docs/benchmarks.md unless `--no-write`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml

from benchmarks.report import BENCHMARKS_MD, machine_description, markdown_table, write_section
from wildsep.models import from_preset

ROOT = Path(__file__).resolve().parent.parent
RATE = 44100
LIMIT_MIB = 2048  # the bound on resident memory


def demo_tuss_overrides() -> dict[str, object]:
    """The model geometry of configs/demo_tuss.yaml."""
    config = yaml.safe_load((ROOT / "configs" / "demo_tuss.yaml").read_text())["model"]
    assert config["preset"] == "tuss-medium"
    return {**config["overrides"], "prompts": tuple(config["prompts"])}


def write_noise_wav(path: Path, seconds: float, rate: int = RATE) -> None:
    """16-bit stereo noise at −20 dBFS RMS, the last of every ten minutes silent; a minute at a
    time, so writing an hour takes 10 MiB of memory."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", rate, 2, subtype="PCM_16") as f:
        for minute in range(int(np.ceil(seconds / 60))):
            frames = round(min(60.0, seconds - 60 * minute) * rate)
            level = 0.0 if minute % 10 == 9 else 0.1
            f.write((level * rng.standard_normal((frames, 2))).astype(np.float32))


def child(argv: list[str]) -> None:
    """Inside the measured process: run `wildsep separate`, print wall, CPU and peak RSS."""
    from wildsep.cli import main as cli_main

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    start, cpu_start = time.perf_counter(), time.process_time()
    status = cli_main(["separate", *argv])
    report = {  # imports and model loading aside, the peak memory of the whole process
        "status": status,
        "wall_s": time.perf_counter() - start,
        "cpu_s": time.process_time() - cpu_start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(report), flush=True)


def duration(seconds: float) -> str:
    """3600 → '1 h', 120 → '2 min', 2.5 → '2.5 s'."""
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 60:.3g} min" if seconds >= 60 else f"{seconds:.3g} s"


def measure(
    model_dir: Path, source: Path, out_dir: Path, prompts: list[str], threads: int
) -> dict[str, float]:
    """Run `wildsep separate` on `source` in a fresh process; its wall/CPU seconds, peak RSS."""
    args = [str(source), "--model", str(model_dir), "--out", str(out_dir), "--device", "cpu"]
    if prompts:
        args += ["--prompts", *prompts]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.longfile", "--child", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"wildsep separate failed: {result.stderr.strip()[-2000:]}")
    report = json.loads(lines[-1])
    if report["status"] != 0:
        raise RuntimeError(f"wildsep separate exited {report['status']}: {result.stderr[-2000:]}")
    return report


def run(
    seconds: float, backbone_seconds: float, threads: int, tmp_root: Path | None
) -> list[list[str]]:
    cases = [
        ("demo TUSS (8 kHz, D = 32)", "tuss-medium", demo_tuss_overrides(), ["speech", "sfxbg"]),
        ("backbone-medium (48 kHz)", "backbone-medium", {}, []),
    ]
    rows = []
    if tmp_root is not None:
        tmp_root.mkdir(parents=True, exist_ok=True)  # a folder on a big disk, made if new
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        work = Path(tmp)
        for name, preset, overrides, prompts in cases:
            length = seconds if preset != "backbone-medium" else min(seconds, backbone_seconds)
            source = work / f"input_{length:g}s.wav"
            if not source.exists():
                write_noise_wav(source, length)
            torch.manual_seed(0)
            model = from_preset(preset, **overrides)
            params = sum(p.numel() for p in model.parameters())
            model_dir = model.save_pretrained(work / preset)
            report = measure(model_dir, source, work / "out", prompts, threads)
            written = sf.info(str(next((work / "out" / source.stem).glob("*.wav"))))
            assert written.frames == sf.info(str(source)).frames
            outputs = f"{len(prompts)} prompts" if prompts else f"{model.config.n_outputs} outputs"
            rows.append(
                [
                    name,
                    f"{params / 1e6:.2f}M",
                    duration(length),
                    outputs,
                    f"{report['wall_s']:.1f}",
                    f"{length / report['wall_s']:.2f}×",
                    f"{length / report['cpu_s']:.2f}×",
                    f"{report['peak_rss_mib']:.0f}"
                    + (" ✓" if report["peak_rss_mib"] < LIMIT_MIB else " ✗"),
                ]
            )
            print(" | ".join(rows[-1]), flush=True)
            for file in (work / "out" / source.stem).glob("*.wav"):
                file.unlink()  # an hour of float outputs is ~0.6 GiB per output
    return rows


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3600.0, help="length of the input")
    parser.add_argument(
        "--backbone-seconds", type=float, default=120.0, help="backbone-medium's (shorter) input"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the process")
    parser.add_argument("--tmp", type=Path, default=None, help="where inputs/outputs go")
    parser.add_argument("--note", default="", help="a sentence on the conditions, in the table")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--md", type=Path, default=BENCHMARKS_MD, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rows = run(args.seconds, args.backbone_seconds, args.threads, args.tmp)
    header = [
        "model",
        "params",
        "audio (44.1 kHz stereo)",
        "outputs",
        "wall (s)",
        "× real time (wall)",
        "× real time per CPU-second",
        f"peak RSS (MiB, < {LIMIT_MIB})",
    ]
    body = "\n\n".join(
        [
            "## Long files (`python -m benchmarks.longfile`)",
            f"Machine: {machine_description()}; the measured process ran with {args.threads}"
            " torch thread(s). `wildsep separate --device cpu` in a fresh process on a"
            " generated 16-bit stereo WAV, reading, separating (6 s chunks every 3 s) and"
            " writing 32-bit float outputs as a stream. × real time = seconds of audio per"
            " second of wall time, and per second of the process's CPU time (user + system,"
            " which other jobs on the machine do not inflate); peak RSS is the process's"
            " `ru_maxrss`, torch and the model included." + (f" {args.note}" if args.note else ""),
            markdown_table(header, rows),
        ]
    )
    print(body)
    if not args.no_write:
        write_section("longfile-cpu", body, args.md)
    return body


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
