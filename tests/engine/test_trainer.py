import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from wildsep.engine import latest_checkpoint, list_checkpoints

sys.path.insert(0, str(Path(__file__).parent))
import tiny_run

SCRIPT = Path(__file__).parent / "tiny_run.py"
ROOT = Path(__file__).resolve().parents[2]


def losses(run_dir: Path, rank: int = 0) -> dict[int, float]:
    """Step → loss; a resumed run overwrites the steps it repeats."""
    lines = (run_dir / f"losses.{rank}.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines)}


def test_trains_checkpoints_rotates_and_exports(tmp_path):
    trainer = tiny_run.run(tmp_path, steps=6)
    assert trainer.step == 6
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-000000004", "ckpt-000000006"]
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert (tmp_path / "tensorboard").is_dir()
    state = json.loads((latest_checkpoint(tmp_path) / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["data_position"] == 6
    recorded = losses(tmp_path)
    assert recorded[5] < recorded[0]  # it learns


def test_nan_batch_is_skipped_without_touching_the_weights(tmp_path):
    before = tiny_run.run(tmp_path / "a", steps=3, checkpoint_every=100)
    params_before = load_file(tmp_path / "a" / "params.safetensors")
    skipped = tiny_run.run(tmp_path / "b", steps=4, nan_at=3, checkpoint_every=100)
    params_after = load_file(tmp_path / "b" / "params.safetensors")
    assert skipped.counters == {"skipped_steps": 1, "skipped_batches": 1}
    assert before.counters["skipped_steps"] == 0
    for name, value in params_before.items():
        assert torch.equal(value, params_after[name]), name


@pytest.mark.parametrize("grad_clip", [0.0, 5.0])
def test_a_non_finite_gradient_is_never_applied(tmp_path, grad_clip):
    """A finite loss with a NaN gradient at step 3: the step is skipped with clipping on or off,
    so the weights equal those of a run that stopped before it."""
    tiny_run.run(tmp_path / "a", steps=3, checkpoint_every=100, grad_clip=grad_clip)
    skipped = tiny_run.run(
        tmp_path / "b", steps=4, nan_grad_at=3, checkpoint_every=100, grad_clip=grad_clip
    )
    assert skipped.counters == {"skipped_steps": 1, "skipped_batches": 0}
    before = load_file(tmp_path / "a" / "params.safetensors")
    after = load_file(tmp_path / "b" / "params.safetensors")
    for name, value in before.items():
        assert torch.equal(value, after[name]), name


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_skipped_batch_stays_out_of_the_logged_means(tmp_path):
    tiny_run.run(tmp_path, steps=6, nan_at=3, checkpoint_every=100, log_every=2)
    recorded = losses(tmp_path)
    assert math.isnan(recorded[3])
    records = {r["step"]: r for r in metrics(tmp_path)}
    assert sorted(records) == [2, 4, 6]
    assert records[4]["loss"] == pytest.approx(recorded[2])  # step 3's NaN left out of the mean
    assert records[2]["loss"] == pytest.approx((recorded[0] + recorded[1]) / 2)
    assert records[4]["skipped_batches"] == 1
    assert all(math.isfinite(v) for r in records.values() for v in r.values())


def test_each_micro_batch_of_an_accumulated_step_is_told_its_index(tmp_path):
    tiny_run.run(tmp_path, steps=2, grad_accum=3, checkpoint_every=100)
    lines = [json.loads(x) for x in (tmp_path / "losses.0.jsonl").read_text().splitlines()]
    assert [(r["step"], r["micro"]) for r in lines] == [(s, m) for s in (0, 1) for m in (0, 1, 2)]


def test_resume_after_sigkill_reproduces_the_uninterrupted_losses(tmp_path):
    tiny_run.run(tmp_path / "full", steps=8)
    expected = losses(tmp_path / "full")

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(killed), "8", "--hang-at", "5"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120

    def hanging_in_step_5() -> bool:  # ckpt-4 written and step 5's batch being drawn
        newest = latest_checkpoint(killed)
        logged = (killed / "losses.0.jsonl").is_file() and max(losses(killed)) == 4
        return newest is not None and newest.name == "ckpt-000000004" and logged

    while not hanging_in_step_5():
        assert time.time() < deadline and proc.poll() is None, "run died before its checkpoint"
        time.sleep(0.2)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait()
    assert max(losses(killed)) == 4  # it was inside step 5 (hanging on its batch)

    tiny_run.run(killed, steps=8)  # resumes from ckpt-4
    resumed = losses(killed)
    for step in range(4, 8):
        assert resumed[step] == pytest.approx(expected[step], rel=1e-6, abs=1e-6), step
    torch.testing.assert_close(
        load_file(killed / "params.safetensors"),
        load_file(tmp_path / "full" / "params.safetensors"),
    )


def test_sigterm_checkpoints_and_exits_cleanly(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(tmp_path), "1000"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (tmp_path / "losses.0.jsonl").exists() or len(losses(tmp_path)) < 3:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    step = int(latest_checkpoint(tmp_path).name.split("-")[1])
    assert step >= 3 and step == max(losses(tmp_path)) + 1  # checkpointed the step it finished
    assert "run again to resume" in stderr


def test_a_failed_checkpoint_write_keeps_the_previous_one_and_training_goes_on(
    tmp_path, monkeypatch
):
    from accelerate import Accelerator

    real_save = Accelerator.save_state
    calls = {"n": 0}

    def flaky_save(self, output_dir=None, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_save(self, output_dir, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", flaky_save)
    trainer = tiny_run.run(tmp_path, steps=6)
    assert trainer.step == 6
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-000000002", "ckpt-000000006"]
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Accelerate's --cpu launcher needs mpirun for several processes; torchrun (--multi_gpu)
    # forms a gloo group on a machine without GPUs.
    for name, procs in (("one", 1), ("two", 2)):
        distributed = ["--multi_gpu", "--num_processes", str(procs)] if procs > 1 else []
        args = ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        command = [sys.executable, "-m", "accelerate.commands.launch", *distributed, *args]
        result = subprocess.run(
            [*command, str(SCRIPT), str(tmp_path / name), "5"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    one, two = (load_file(tmp_path / n / "params.safetensors") for n in ("one", "two"))
    for name in one:
        torch.testing.assert_close(one[name], two[name], rtol=1e-5, atol=1e-6)
    # and the two ranks saw different halves of each global batch
    assert losses(tmp_path / "two", 0) != losses(tmp_path / "two", 1)


def test_export_averages_the_last_checkpoints(tmp_path):
    tiny_run.run(tmp_path, steps=6, average_last=2)
    last_two = [load_file(p / "model.safetensors") for p in list_checkpoints(tmp_path)]
    exported = load_file(tmp_path / "model" / "model.safetensors")
    for name, value in exported.items():
        torch.testing.assert_close(value, (last_two[0][name] + last_two[1][name]) / 2)
    assert not torch.equal(last_two[0]["net.0.weight"], last_two[1]["net.0.weight"])


def test_averaging_more_checkpoints_than_are_kept_is_refused(tmp_path):
    with pytest.raises(ValueError, match="keep_last"):
        tiny_run.run(tmp_path, steps=2, average_last=3)
