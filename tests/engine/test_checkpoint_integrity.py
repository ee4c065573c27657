"""A damaged checkpoint never stops or silently corrupts a run: resuming verifies each
checkpoint completely first, falls back to the newest good one (the bad one is renamed
`.corrupt`, with a warning naming the file), and fails in one line, changing nothing, when
none is usable. Rotation and export never replace good files with bad ones."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from wildsep.engine import list_checkpoints, run_recipe
from wildsep.engine.checkpoint import checkpoint_problems
from wildsep.models.pretrained import CheckpointError

sys.path.insert(0, str(Path(__file__).parent))
import tiny_run

CKPT4, CKPT6 = "ckpt-000000004", "ckpt-000000006"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(1).bytes(512))


def tree_digest(root: Path) -> dict[str, str]:
    """Every file and folder under `root` → its SHA-256 (folders: "dir")."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "dir"
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An uninterrupted 8-step run, and a run stopped after 6 steps (ckpt-4 and ckpt-6)."""
    root = tmp_path_factory.mktemp("runs")
    tiny_run.run(root / "full", steps=8)
    tiny_run.run(root / "six", steps=6)
    return {"full": root / "full", "six": root / "six"}


DAMAGE: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "truncated model": ("model.safetensors", truncate, "model.safetensors is truncated ("),
    "truncated optimizer": ("optimizer.bin", truncate, "optimizer.bin is truncated or corrupt"),
    "truncated state": (
        "trainer_state.json",
        truncate,
        "trainer_state.json is truncated or not valid JSON",
    ),
    "deleted model": ("model.safetensors", Path.unlink, "model.safetensors is missing"),
    "deleted rng": ("random_states_0.pkl", Path.unlink, "random_states_0.pkl is missing"),
    "garbage extra": ("extra.safetensors", garbage, "extra.safetensors is not a safetensors file"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one_exactly(
    kind: str, runs: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name, damage, message = DAMAGE[kind]
    run = tmp_path / "run"
    shutil.copytree(runs["six"], run)
    damage(run / CKPT6 / name)
    bad_files = tree_digest(run / CKPT6)
    with caplog.at_level(logging.WARNING, logger="wildsep.engine.checkpoint"):
        tiny_run.run(run, steps=8)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        w.startswith(f"{CKPT6}: {message}") and f"resuming from {CKPT4}" in w for w in warnings
    ), warnings
    # The bad checkpoint is kept, untouched, out of the rotation; training redid steps 5-6.
    assert tree_digest(run / f"{CKPT6}.corrupt") == bad_files
    assert [p.name for p in list_checkpoints(run)] == [CKPT6, "ckpt-000000008"]
    expected = load_file(runs["full"] / "params.safetensors")
    resumed = load_file(run / "params.safetensors")
    assert expected.keys() == resumed.keys()
    for key, value in expected.items():
        assert torch.equal(resumed[key], value), key


def test_no_usable_checkpoint_is_one_line_naming_each_and_changes_nothing(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs["six"], run)
    truncate(run / CKPT4 / "optimizer.bin")
    (run / CKPT6 / "model.safetensors").unlink()
    before = tree_digest(run)
    with pytest.raises(SystemExit) as stop:
        run_recipe(lambda: tiny_run.run(run, steps=8))
    text = str(stop.value.code)
    assert text.startswith(f"error: cannot resume {run}: no usable checkpoint") and "\n" not in text
    assert f"{CKPT6}: model.safetensors is missing" in text
    assert f"{CKPT4}: optimizer.bin is truncated or corrupt" in text
    assert tree_digest(run) == before
    with pytest.raises(CheckpointError):  # the error recipes report as `error: ...`
        tiny_run.run(run, steps=8)
    assert tree_digest(run) == before


def test_a_checkpoint_of_another_model_is_reported_not_half_loaded(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """Names and shapes are compared before anything is loaded."""
    run = tmp_path / "run"
    shutil.copytree(runs["six"], run)
    trainer = tiny_run.run(run, steps=6)  # already done: nothing to train, a live trainer
    weights = load_file(run / CKPT6 / "model.safetensors")
    weights["net.0.weight"] = weights["net.0.weight"][:4]
    save_file(weights, run / CKPT6 / "model.safetensors")
    problems = checkpoint_problems(trainer.accelerator, run / CKPT6, trainer._extra_state())
    assert problems == [
        "model.safetensors does not match the model (shapes differ (found vs expected): "
        "net.0.weight (4, 1, 9) vs (8, 1, 9))"
    ]


def test_rotation_never_deletes_the_new_good_checkpoint_for_a_newer_bad_one(
    tmp_path: Path,
) -> None:
    trainer = tiny_run.run(tmp_path, steps=4)  # ckpt-2, ckpt-4
    stray = tmp_path / "ckpt-000000010"  # e.g. copied back by hand, damaged
    shutil.copytree(tmp_path / CKPT4, stray)
    truncate(stray / "model.safetensors")
    trainer.config.keep_last = 1
    trainer.step = 6
    assert trainer.save() == tmp_path / CKPT6
    assert [p.name for p in list_checkpoints(tmp_path)] == [CKPT6, stray.name]
    assert checkpoint_problems(trainer.accelerator, tmp_path / CKPT6) == []


def test_a_checkpoint_written_damaged_is_discarded_and_the_older_ones_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = tiny_run.run(tmp_path, steps=4)  # ckpt-2, ckpt-4 (keep_last=2)
    before = tree_digest(tmp_path / CKPT4)
    save_state = trainer.accelerator.save_state

    def torn_save_state(folder: str, **kwargs: object) -> None:
        save_state(folder, **kwargs)
        truncate(Path(folder) / "optimizer.bin")  # the disk lost the end of the file

    monkeypatch.setattr(trainer.accelerator, "save_state", torn_save_state)
    trainer.step = 6
    assert trainer.save() is None
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-000000002", CKPT4]
    assert not any(p.name.startswith(CKPT6) for p in tmp_path.iterdir())
    assert tree_digest(tmp_path / CKPT4) == before


def test_a_failed_export_leaves_the_previous_export_whole(tmp_path: Path) -> None:
    trainer = tiny_run.run(tmp_path, steps=2)
    before = tree_digest(tmp_path / "model")
    model = trainer.accelerator.unwrap_model(trainer.model)

    def dies_halfway(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.safetensors").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    model.save_pretrained = dies_halfway
    with pytest.raises(OSError, match="No space left"):
        trainer.export(tmp_path / "model")
    assert tree_digest(tmp_path / "model") == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("model")) == ["model"]


def launch(run_dir: Path, steps: int, processes: int) -> subprocess.CompletedProcess:
    """`tiny_run.py` under `accelerate launch` with a gloo group of `processes` CPU ranks."""
    distributed = ["--multi_gpu", "--num_processes", str(processes)] if processes > 1 else []
    args = ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command = [sys.executable, "-m", "accelerate.commands.launch", *distributed, *args]
    return subprocess.run(
        [*command, str(Path(__file__).parent / "tiny_run.py"), str(run_dir), str(steps)],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_two_processes_agree_to_skip_a_checkpoint_missing_one_ranks_rng(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """Each rank's RNG file is required (Accelerate would silently skip a missing one), and
    all ranks fall back together."""
    run = tmp_path / "run"
    first = launch(run, 6, processes=2)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (run / CKPT6 / "random_states_1.pkl").is_file()
    (run / CKPT6 / "random_states_1.pkl").unlink()
    resumed = launch(run, 8, processes=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{CKPT6}: random_states_1.pkl is missing; resuming from {CKPT4}" in resumed.stderr
    one = load_file(runs["full"] / "params.safetensors")  # one process, same global batch
    two = load_file(run / "params.safetensors")
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-5, atol=1e-6)
