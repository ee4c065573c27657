"""Fault injection: real recipes (tiny configs, run as a user runs them, in a subprocess) meet
kills, broken files and folders, and a full disk.

For every case the test records what the user saw (exit status and last line of stderr) and
that no input file changed (SHA-256 of every file before and after). With
WILDSEP_FAULT_REPORT=path the records are written as the Markdown table of docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from safetensors.torch import load_file

from tests.tiny import model_overrides

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN = [
    sys.executable,
    str(ROOT / "pretrain" / "run.py"),
    str(ROOT / "configs" / "demo_pretrain.yaml"),
]
RECORDS: list[dict] = []

pytestmark = pytest.mark.slow


def checksums(*folders: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file()
    }


def record(case: str, result: subprocess.CompletedProcess | None, unchanged: bool, what: str):
    seen = ""
    if result is not None:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        seen = f"exit {result.returncode}: {lines[-1] if lines else '(nothing)'}"
    RECORDS.append({"case": case, "user saw": seen, "inputs unchanged": unchanged, "then": what})


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    target = os.environ.get("WILDSEP_FAULT_REPORT")
    if target and RECORDS:
        rows = [
            "| fault | what the user saw | inputs unchanged | what happens next |",
            "|---|---|---|---|",
        ]
        for r in RECORDS:
            seen = r["user saw"].replace("|", "\\|")
            unchanged = "yes" if r["inputs unchanged"] else "NO"
            rows.append(f"| {r['case']} | `{seen}` | {unchanged} | {r['then']} |")
        Path(target).write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, demo_corpus) -> Path:
    """The tiny demo corpus's unlabeled clips and validation set, copied so a test may watch
    them for changes."""
    root = tmp_path_factory.mktemp("faults") / "corpus"
    shutil.copytree(demo_corpus / "unlabeled", root / "unlabeled")
    shutil.copytree(demo_corpus / "valid", root / "valid")
    return root


def pretrain_args(corpus: Path, run_dir: Path, steps: int, *extra: str) -> list[str]:
    settings = {
        "run_dir": run_dir,
        "data.corpus.source": corpus / "unlabeled",
        "data.corpus.cache_dir": run_dir.parent / "cache",
        "data.batch_size": 4,
        "data.num_workers": 1,
        "data.clips.sample_rate": 8000,
        "data.clips.duration": 0.5,
        "train.max_steps": steps,
        "stages.0.steps": steps,
        "train.log_every": 1,
        "train.checkpoint_every": 2,
        "train.val_every": 0,
        "validation.manifest": "null",
        "validation.mom_batches": 1,
    }
    return [*PRETRAIN, *model_overrides(), *(f"{k}={v}" for k, v in settings.items()), *extra]


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, **kwargs
    )


def logged_losses(run_dir: Path) -> dict[int, float]:
    """Step → loss from metrics.jsonl; a resumed run's repeated steps overwrite earlier ones."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if "loss" in r}


def start_and_kill_at(args: list[str], run_dir: Path, step: int) -> None:
    """Start a run in its own process group and SIGKILL the whole group (data workers too)
    once it has logged `step`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 240
    while not (metrics.is_file() and max(logged_losses(run_dir), default=0) >= step):
        assert proc.poll() is None and time.time() < deadline, "the run ended before the kill"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def uninterrupted(corpus, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    result = run(pretrain_args(corpus, run_dir, 12))
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_sigkill_at_random_steps_then_resume_equals_the_uninterrupted_run(
    corpus, uninterrupted, tmp_path
):
    before = checksums(corpus)
    run_dir = tmp_path / "run"
    args = pretrain_args(corpus, run_dir, 12)
    kills = sorted(random.Random(0).sample(range(2, 11), 2))  # two kills, anywhere in the run
    for step in kills:
        start_and_kill_at(args, run_dir, step)
    result = run(args)
    assert result.returncode == 0, result.stderr[-3000:]
    expected, resumed = logged_losses(uninterrupted), logged_losses(run_dir)
    assert sorted(resumed) == list(range(1, 13))
    for step, loss in expected.items():
        assert resumed[step] == pytest.approx(loss, rel=1e-6, abs=1e-7), step
    final = load_file(run_dir / "model" / "model.safetensors")
    for name, value in load_file(uninterrupted / "model" / "model.safetensors").items():
        assert (final[name] == value).all(), name
    assert not list(run_dir.glob("*.tmp"))
    unchanged = checksums(corpus) == before
    assert unchanged
    record(
        f"SIGKILL of the process group at steps {kills[0]} and {kills[1]} of 12",
        result,
        unchanged,
        "the same command resumes from the newest checkpoint; losses and weights equal an "
        "uninterrupted run's",
    )


def test_a_foreign_run_directory_is_refused_untouched(corpus, tmp_path):
    before = checksums(corpus)
    result = run(pretrain_args(corpus, corpus / "unlabeled", 2))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: run_dir")
    assert "Traceback" not in result.stderr
    unchanged = checksums(corpus) == before
    assert unchanged
    record(
        "run_dir pointed at the corpus",
        result,
        unchanged,
        "nothing is written; choose a new or empty folder",
    )


def write_broken_files(folder: Path) -> None:
    """One file for each reason the data layer rejects audio."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("not audio")
    (folder / "clip.m4a").write_bytes(b"\x00" * 64)
    sf.write(folder / "nan.wav", np.full(4000, np.nan, np.float32), 8000, subtype="FLOAT")
    sf.write(folder / "silent.wav", np.zeros(4000, np.float32), 8000)
    sf.write(folder / "whole.wav", 0.1 * np.random.default_rng(0).standard_normal(24000), 8000)
    data = (folder / "whole.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 2])  # header promises 24 000 frames
    (folder / "whole.wav").unlink()


def test_a_corpus_with_broken_files_trains_and_reports_each(corpus, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(corpus / "unlabeled", mixed / "unlabeled")
    write_broken_files(mixed / "unlabeled")
    before = checksums(mixed)
    run_dir = tmp_path / "run"
    result = run(pretrain_args(mixed, run_dir, 2))
    assert result.returncode == 0, result.stderr[-3000:]
    report = (run_dir / "skipped_files.csv").read_text()
    reasons = {line.split(",")[0].rsplit("/", 1)[-1]: line for line in report.splitlines()[1:]}
    assert sorted(reasons) == [
        "clip.m4a",
        "empty.wav",
        "nan.wav",
        "notes.wav",
        "silent.wav",
        "truncated.wav",
    ]
    assert "truncated" in reasons["truncated.wav"] and "silent" in reasons["silent.wav"]
    unchanged = checksums(mixed) == before
    assert unchanged
    record(
        "corpus with empty, non-audio, unsupported, NaN, silent and truncated files",
        result,
        unchanged,
        "trains on the good files; run_dir/skipped_files.csv lists each bad one with its reason",
    )


def limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_loses_no_checkpoint_and_ends_with_one_line(corpus, tmp_path):
    """The OS refuses every write past 200 kB (RLIMIT_FSIZE): the model's weights no longer fit.
    Checkpoints fail cleanly (no torn folder), training goes on, export fails with one line."""
    run_dir = tmp_path / "run"
    ok = run(pretrain_args(corpus, run_dir, 2))  # a first checkpoint, written normally
    assert ok.returncode == 0, ok.stderr[-3000:]
    good = sorted(p.name for p in run_dir.glob("ckpt-*"))
    before = checksums(corpus, run_dir / good[-1])
    result = run(pretrain_args(corpus, run_dir, 6), preexec_fn=limit_file_size(200_000))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "Traceback" not in result.stderr
    assert "could not write checkpoint" in result.stderr
    assert sorted(p.name for p in run_dir.glob("ckpt-*")) == good  # the good one kept
    assert not list(run_dir.glob("*.tmp")) and not list(run_dir.glob(".*tmp*"))
    unchanged = checksums(corpus, run_dir / good[-1]) == before
    assert unchanged
    again = run(pretrain_args(corpus, run_dir, 6))  # space is back: resumes and finishes
    assert again.returncode == 0, again.stderr[-3000:]
    record(
        "full disk (writes past 200 kB refused by the OS) during training and export",
        result,
        unchanged,
        "failed checkpoints are logged and removed, the previous one kept; once space is back "
        "the same command resumes and exports",
    )


@pytest.fixture(scope="module")
def four_steps(corpus, tmp_path_factory) -> Path:
    """A finished 4-step run: checkpoints at steps 2 and 4, and an export."""
    run_dir = tmp_path_factory.mktemp("four") / "run"
    result = run(pretrain_args(corpus, run_dir, 4))
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "model.safetensors truncated": lambda c: truncate(c / "model.safetensors"),
    "optimizer.bin deleted": lambda c: (c / "optimizer.bin").unlink(),
    "trainer_state.json truncated": lambda c: truncate(c / "trainer_state.json"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(
    corpus, four_steps, uninterrupted, tmp_path, damage
):
    run_dir = tmp_path / "run"
    shutil.copytree(four_steps, run_dir)
    shutil.copytree(four_steps.parent / "cache", tmp_path / "cache")
    DAMAGE[damage](run_dir / "ckpt-000000004")
    before = checksums(corpus)
    result = run(pretrain_args(corpus, run_dir, 6))
    assert result.returncode == 0, result.stderr[-3000:]
    warning = next(line for line in result.stderr.splitlines() if "resuming from" in line)
    assert damage.split()[0] in warning and "ckpt-000000002" in warning
    assert (run_dir / "ckpt-000000004.corrupt").is_dir()  # kept for inspection
    expected, resumed = logged_losses(uninterrupted), logged_losses(run_dir)
    for step in (3, 4, 5, 6):  # recomputed from step 2, exactly as the uninterrupted run
        assert resumed[step] == pytest.approx(expected[step], rel=1e-6, abs=1e-7), step
    unchanged = checksums(corpus) == before
    assert unchanged
    record(
        f"newest checkpoint damaged: {damage}",
        result,
        unchanged,
        "a warning names the file; the run resumes from the newest good checkpoint (the "
        "damaged one is kept as ckpt-….corrupt) and repeats the lost steps exactly",
    )


def damaged_export(four_steps: Path, tmp_path: Path) -> Path:
    model = tmp_path / "model"
    shutil.copytree(four_steps / "model", model)
    truncate(model / "model.safetensors")
    return model


@pytest.mark.parametrize("command", ["separate", "evaluate", "finetune --init"])
def test_a_damaged_export_is_one_line_and_changes_nothing(corpus, four_steps, tmp_path, command):
    model = damaged_export(four_steps, tmp_path)
    before = checksums(model, corpus)
    mixture = next((corpus / "valid").rglob("mixture.wav"))
    args = {
        "separate": [
            sys.executable,
            "-m",
            "wildsep.cli",
            "separate",
            str(mixture),
            "--model",
            str(model),
            "--out",
            str(tmp_path / "out"),
        ],
        "evaluate": [
            sys.executable,
            "-m",
            "wildsep.cli",
            "evaluate",
            str(model),
            "--set",
            str(corpus / "valid" / "manifest.jsonl"),
            "--out",
            str(tmp_path / "out"),
        ],
        "finetune --init": [
            sys.executable,
            str(ROOT / "finetune" / "tuss.py"),
            str(ROOT / "configs" / "demo_tuss.yaml"),
            "--init",
            str(model),
            f"run_dir={tmp_path / 'run'}",
        ],
    }[command]
    result = run(args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "model.safetensors is truncated" in lines[-1]
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()
    unchanged = checksums(model, corpus) == before
    assert unchanged
    record(
        f"`{command}` given an export with a truncated model.safetensors",
        result,
        unchanged,
        "nothing is written; re-export or pick another model",
    )
