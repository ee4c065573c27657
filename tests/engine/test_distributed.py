"""Scale that has actually run: DeepSpeed ZeRO-2/3 and a two-machine group, on CPU.

Every run here is `tests/engine/tiny_run.py` under `accelerate launch`, with the repository's
own launch configs (configs/accelerate/*.yaml) and the same flags docs/pretraining.md gives:
two processes in a gloo group on 127.0.0.1. DeepSpeed runs on its CPU accelerator, through
Accelerate's DeepSpeed plugin (not bypassed: its ZeRO partitions are in the checkpoints), in
fp32 (`--mixed_precision no`).

Loss parity: ZeRO-2/3 and DDP average the same gradients; they differ only in the order of
floating-point sums (the gradient norm for clipping, the reductions). Measured on this machine
with the runs below (6 steps, accumulation 2, clipping at 0.5 active at every step, gradient
norms 1.4–3.0): largest per-micro-batch loss difference from DDP 9.5e-7 (ZeRO-2 and ZeRO-3),
largest exported-weight difference 1.0e-6 (ZeRO-2) and 1.6e-6 (ZeRO-3). With clipping
inactive (grad_clip 5, no accumulation) they were bit-identical. Tolerance: 1e-5 absolute
for both (`LOSS_TOLERANCE`, `WEIGHT_TOLERANCE`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from wildsep.config import ConfigError
from wildsep.engine import TrainConfig, latest_checkpoint, list_checkpoints, make_accelerator
from wildsep.engine.checkpoint import deepspeed_optimizer_partition, read_torch_file
from wildsep.engine.trainer import deepspeed_plugin

sys.path.insert(0, str(Path(__file__).parent))
import tiny_run

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).parent / "tiny_run.py"
ACCELERATE = ROOT / "configs" / "accelerate"
STEPS, GRAD_ACCUM, GRAD_CLIP = 6, 2, 0.5  # below these runs' gradient norms: clipping acts
TRAINING = ["--model", "backbone", "--grad-accum", str(GRAD_ACCUM), "--grad-clip", str(GRAD_CLIP)]
LOSS_TOLERANCE = 1e-5  # absolute, per micro-batch loss (values of -3 … 0 dB); measured 9.5e-7
WEIGHT_TOLERANCE = 1e-5  # absolute, per weight of the exported model; measured 1.6e-6
TIMEOUT = 600  # seconds for one launch (generous for a loaded machine); a hung group fails the test


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment() -> dict[str, str]:
    # The worktree's code (not an installed copy) and tests/tiny.py; one thread per process.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def launcher(*args: str, port: int) -> list[str]:
    common = ["--mixed_precision", "no", "--dynamo_backend", "no"]
    common += ["--main_process_ip", "127.0.0.1", "--main_process_port", str(port)]
    return [sys.executable, "-m", "accelerate.commands.launch", *args, *common]


def kill_all(proc: subprocess.Popen) -> None:
    """SIGKILL a launcher and every process under it (torchrun puts its workers in sessions of
    their own, so killing the launcher's process group would leave them running)."""
    try:
        tree = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
    except psutil.NoSuchProcess:
        tree = []
    for process in tree:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(tree, timeout=30)
    proc.wait()


def start(command: list[str], log: Path) -> subprocess.Popen:
    """Start a launcher, its output into `log`."""
    handle = log.open("w")
    return subprocess.Popen(
        command, cwd=ROOT, env=environment(), stdout=handle, stderr=subprocess.STDOUT
    )


def finish(proc: subprocess.Popen, log: Path, timeout: float = TIMEOUT) -> str:
    """Wait for a launcher; on a failure or a hang, kill its group and show its output."""
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_all(proc)
        pytest.fail(f"launch hung for {timeout} s; its output:\n{log.read_text()[-4000:]}")
    output = log.read_text()
    assert code == 0, f"launch failed ({code}); its output:\n{output[-4000:]}"
    return output


def launch(run_dir: Path, *args: str, script_args: tuple[str, ...] = ()) -> str:
    run_dir.mkdir(parents=True, exist_ok=True)
    command = launcher(*args, port=free_port())
    log = run_dir.with_name(run_dir.name + ".log")
    command += [str(SCRIPT), str(run_dir), str(STEPS), *TRAINING, *script_args]
    return finish(start(command, log), log)


def losses(run_dir: Path, rank: int) -> dict[tuple[int, int], float]:
    """(step, micro) → loss; a resumed run overwrites the steps it repeats."""
    records = map(json.loads, (run_dir / f"losses.{rank}.jsonl").read_text().splitlines())
    return {(r["step"], r["micro"]): r["loss"] for r in records}


@pytest.fixture(scope="module")
def ddp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: DDP over 2 CPU processes, same global batch, same training config."""
    run = tmp_path_factory.mktemp("ddp") / "run"
    config = str(ACCELERATE / "multi_gpu.yaml")
    launch(run, "--config_file", config, "--num_processes", "2")
    return run


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_zero_partitions_match_ddp_survive_a_kill_and_export_a_usable_model(
    tmp_path: Path, ddp: Path, stage: int
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    config = str(ACCELERATE / f"deepspeed_zero{stage}.yaml")
    args = ["--config_file", config, "--num_processes", "2"]

    # 1. Train until step 5 hangs on its batch (ckpt-4 written), then SIGKILL the whole group.
    log = tmp_path / "killed.log"
    hang = ["--hang-at", str(5 * GRAD_ACCUM)]
    command = [*launcher(*args, port=free_port()), str(SCRIPT), str(run), str(STEPS)]
    proc = start([*command, *TRAINING, *hang], log)
    deadline = time.time() + TIMEOUT

    def in_step_5() -> bool:
        newest = latest_checkpoint(run)
        try:
            done = [max(losses(run, r)) == (4, GRAD_ACCUM - 1) for r in (0, 1)]
        except (OSError, ValueError):  # not written yet, or a line half-written
            return False
        return newest is not None and newest.name == "ckpt-000000004" and all(done)

    while not in_step_5():
        if time.time() > deadline or proc.poll() is not None:
            kill_all(proc)
            pytest.fail(f"the run did not reach step 5; its output:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)
    kill_all(proc)  # SIGKILL to the launcher and both ranks: no chance to clean up

    # 2. Engaged: each process wrote its own ZeRO partition of the optimizer state, and the two
    #    partitions together hold each Adam moment exactly once (ZeRO-3: the weights, too).
    shards = run / "ckpt-000000004" / "pytorch_model"
    weights = load_file(ddp / "model" / "model.safetensors")
    model_size = sum(v.numel() for v in weights.values())
    moments = 0
    for rank in (0, 1):
        saved = read_torch_file(shards / deepspeed_optimizer_partition(rank), deepspeed=True)
        state = saved["optimizer_state_dict"]
        assert int(state["zero_stage"]) == stage and state["partition_count"] in (2, [2])
        adam = state.get("base_optimizer_state", state.get("optimizer_state_dict"))["state"]
        moments += sum(entry["exp_avg"].numel() for entry in adam.values())
    assert model_size <= moments <= model_size + 2 * len(weights)  # + alignment padding
    model_files = sorted(p.name for p in shards.glob("*model_states.pt"))
    if stage == 3:
        assert model_files == [f"zero_pp_rank_{r}_mp_rank_00_model_states.pt" for r in (0, 1)]
    else:
        assert model_files == ["mp_rank_00_model_states.pt"]

    # 3. Resume: the same command continues from ckpt-4 (it repeats only steps 4 and 5).
    before = (run / "losses.0.jsonl").read_text().splitlines()
    launch(run, *args)
    after = (run / "losses.0.jsonl").read_text().splitlines()[len(before) :]
    repeated = [(r["step"], r["micro"]) for r in map(json.loads, after)]
    assert repeated == [(s, m) for s in (4, 5) for m in range(GRAD_ACCUM)]
    assert [p.name for p in list_checkpoints(run)] == ["ckpt-000000004", "ckpt-000000006"]

    # 4. Parity with DDP on the same global batch, before and after the kill, on both ranks.
    for rank in (0, 1):
        ours, reference = losses(run, rank), losses(ddp, rank)
        assert (
            sorted(ours)
            == sorted(reference)
            == [(s, m) for s in range(STEPS) for m in range(GRAD_ACCUM)]
        )
        worst = max(abs(ours[key] - reference[key]) for key in reference)
        assert worst <= LOSS_TOLERANCE, f"rank {rank}: loss differs from DDP by {worst:.2e}"
    first, last = losses(ddp, 0)[(0, 0)], losses(ddp, 0)[(STEPS - 1, GRAD_ACCUM - 1)]
    assert last < first - 1.0  # it trained: a frozen model would match a frozen model

    # 5. The consolidated export equals DDP's weights and is accepted by --init and separate.
    exported = load_file(run / "model" / "model.safetensors")
    reference = load_file(ddp / "model" / "model.safetensors")
    assert exported.keys() == reference.keys()
    for name, value in reference.items():
        torch.testing.assert_close(exported[name], value, rtol=0, atol=WEIGHT_TOLERANCE)
    assert_accepted_by_init_and_separate(run / "model", tmp_path)


def assert_accepted_by_init_and_separate(model_dir: Path, tmp_path: Path) -> None:
    from finetune.config import TUSSModelConfig
    from finetune.tuss import build_model
    from tests.tiny import TINY_SEPARATOR
    from wildsep.cli import main as wildsep
    from wildsep.engine import initialise_from
    from wildsep.models import TUSS, Backbone, from_preset

    backbone = from_preset("backbone-medium", **TINY_SEPARATOR, n_outputs=4)
    initialise_from(backbone, model_dir)  # pretrain/run.py model.init=...
    for name, value in load_file(model_dir / "model.safetensors").items():
        assert torch.equal(backbone.state_dict()[name], value), name
    tuss, _ = build_model(TUSSModelConfig(init=str(model_dir)))  # finetune/tuss.py --init ...
    assert isinstance(tuss, TUSS) and isinstance(backbone, Backbone)

    clip = tmp_path / "clip.wav"
    noise = np.random.default_rng(0).standard_normal(4000).astype(np.float32) * 0.1
    sf.write(clip, noise, 8000)
    out = tmp_path / "separated"
    assert wildsep(["separate", str(clip), "--model", str(model_dir), "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "clip").iterdir()) == [f"output_{i}.wav" for i in range(4)]


@pytest.mark.slow
def test_two_machines_on_one_host_train_like_one_process(tmp_path: Path) -> None:
    """Two launchers, machine_rank 0 and 1, one process each, meeting on 127.0.0.1: the
    command docs/pretraining.md gives for a cluster. Same parameters as one process with the
    whole global batch."""
    tiny_run.run(tmp_path / "one", steps=4)  # in this process: global batch 4, one process
    run, port = tmp_path / "two", free_port()
    config = str(ACCELERATE / "multi_gpu.yaml")
    procs = []
    for machine in (0, 1):
        args = ["--config_file", config, "--num_processes", "2", "--num_machines", "2"]
        command = launcher(*args, "--machine_rank", str(machine), port=port)
        log = tmp_path / f"machine{machine}.log"
        procs.append((start([*command, str(SCRIPT), str(run), "4"], log), log))
    for proc, log in procs:
        finish(proc, log)
    state = json.loads((latest_checkpoint(run) / "trainer_state.json").read_text())
    assert state["num_processes"] == 2
    one, two = (load_file(tmp_path / n / "params.safetensors") for n in ("one", "two"))
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-5, atol=1e-6)
    tiny_losses = [json.loads(x) for x in (run / "losses.1.jsonl").read_text().splitlines()]
    assert len(tiny_losses) == 4  # the second machine's process trained its half


def test_deepspeed_takes_accumulation_and_clipping_from_the_training_config(monkeypatch):
    config = TrainConfig(grad_accum=3)
    config.optim.grad_clip = 0.25
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    plugin = deepspeed_plugin(config, micro_batch=4)
    ds = plugin.deepspeed_config
    assert ds["gradient_accumulation_steps"] == 3 and ds["gradient_clipping"] == 0.25
    assert ds["zero_optimization"]["stage"] == 3 and ds["train_micro_batch_size_per_gpu"] == 4
    monkeypatch.setenv("ACCELERATE_GRADIENT_CLIPPING", "1.0")  # a launch config that disagrees
    with pytest.raises(ConfigError, match=r"gradient_clipping=1.0 but train.optim.grad_clip"):
        deepspeed_plugin(config, micro_batch=4)
    monkeypatch.setenv("ACCELERATE_GRADIENT_CLIPPING", "0.25")  # agreeing is fine
    assert deepspeed_plugin(config, micro_batch=4).deepspeed_config["gradient_clipping"] == 0.25


def test_more_processes_than_gpus_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")  # what torchrun tells each of 3 local processes
    with pytest.raises(ConfigError) as error:
        make_accelerator(TrainConfig(), tmp_path)
    message = str(error.value)
    assert message.startswith("3 processes were launched on this machine but it has 2 GPU(s)")
    assert "\n" not in message and "--num_processes" in message


@pytest.mark.parametrize("zero_stage", [2, 3])
@pytest.mark.parametrize("needs", ["validation", "teacher"])
def test_zero3_refuses_what_needs_whole_weights_on_one_process(
    monkeypatch, tmp_path, zero_stage, needs
):
    """Validation on the main process and an EMA teacher would wait forever for the other
    processes' slices under ZeRO-3; ZeRO-2 keeps whole weights and allows both."""
    from wildsep.engine import Stage, Trainer, trainer
    from wildsep.objectives import MixITObjective, MixITObjectiveConfig

    class Teacher(MixITObjective):
        reads_weights = True

    monkeypatch.setattr(trainer, "deepspeed_zero_stage", lambda accelerator: zero_stage)
    config = TrainConfig(max_steps=1, val_every=1 if needs == "validation" else 0)
    accelerator = make_accelerator(config, tmp_path)
    objective = (Teacher if needs == "teacher" else MixITObjective)(MixITObjectiveConfig())
    validate = (lambda model, step: {}) if needs == "validation" else None
    args = (config, tiny_run.TinySeparator(), [Stage("a", objective, 1)], None, tmp_path)
    message = {"validation": "validation runs the whole model", "teacher": "read the model's"}
    if zero_stage == 3:
        with pytest.raises(ValueError, match=message[needs]):
            Trainer(*args, accelerator, 8000, validate)
    else:
        Trainer(*args, accelerator, 8000, validate)
