"""The training engine shared by pre-training and fine-tuning.

Step-based training on Accelerate (one CPU to many GPU machines; DDP, or DeepSpeed ZeRO-2/3
through Accelerate's plugin, on GPUs or DeepSpeed's CPU accelerator) with bf16/fp16/fp32,
gradient accumulation and clipping, AdamW, warm-up plus constant/cosine/plateau schedules, a
curriculum of stages (e.g. MixIT, then Self-Remixing), TensorBoard logging, periodic
validation, atomic rotating checkpoints, automatic resume, and a graceful stop on
SIGTERM/SIGINT that checkpoints first.

Determinism: every batch is a function of its position (the data source is asked for the
batches from position `step × grad_accum` on), and objectives derive their randomness from the
step, so a run resumed at step k sees and does exactly what an uninterrupted run would.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DeepSpeedPlugin, DistributedType, InitProcessGroupKwargs
from torch import Tensor, nn
from tqdm.auto import tqdm

from wildsep.config import ConfigError
from wildsep.engine.checkpoint import (
    WRITE_ERRORS,
    average_model_weights,
    list_checkpoints,
    load_latest_checkpoint,
    save_checkpoint,
    write_folder_atomically,
)
from wildsep.engine.schedule import LRSchedule, ScheduleConfig

log = logging.getLogger(__name__)
# One JSON line per log step (training terms) and per validation ("val/..." scalars)
METRICS_FILE = "metrics.jsonl"

Batch = dict[str, Any]  # tensors (moved to the device) and e.g. prompt lists (passed through)
BatchSource = Callable[[int], Iterator[Batch]]  # position (micro-batches consumed) → batches
# validate(model, step) → scalars (float) and audio clips (1-D tensors, logged with spectrograms)
Validate = Callable[[nn.Module, int], Mapping[str, float | Tensor]]


class Precision(str, Enum):
    no = "no"
    fp16 = "fp16"
    bf16 = "bf16"


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-2
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float = 5.0  # max global gradient norm; 0 disables clipping


@dataclass
class TrainConfig:
    max_steps: int = 100_000
    grad_accum: int = 1
    precision: Precision = Precision.no
    # Seeds the model's initialisation and every global random generator (Python, NumPy,
    # torch) before the recipe builds anything; data order and objective draws have their own
    # keyed seeds (data.seed, objective seeds), so they can be varied separately.
    seed: int = 0
    # torch.use_deterministic_algorithms: bit-identical runs on GPU too, at some speed cost
    # (CPU runs are deterministic without it). docs/pretraining.md, "Reproducibility".
    deterministic: bool = False
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    plateau_metric: str = "val/loss"  # the validation scalar the plateau schedule watches
    log_every: int = 50
    val_every: int = 1000
    checkpoint_every: int = 1000
    keep_last: int = 3  # checkpoints kept (older ones are deleted); 0 keeps all
    # Export the mean of the last K checkpoints' weights (TUSS evaluates averaged checkpoints);
    # 0 or 1 exports the final weights. Needs keep_last ≥ K.
    average_last: int = 0
    resume: bool = True  # continue from the newest checkpoint in the run directory
    # Resume even though data, optimiser or objective settings differ from the run's saved
    # config (the differences are listed and the previous config is kept).
    allow_changes: bool = False

    def __post_init__(self) -> None:
        positive = {"max_steps": self.max_steps, "grad_accum": self.grad_accum}
        positive |= {"log_every": self.log_every, "checkpoint_every": self.checkpoint_every}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"train.{name} must be >= 1, got {value}")
        if self.val_every < 0 or self.keep_last < 0 or self.average_last < 0:
            raise ValueError(
                "train.val_every (0: never), keep_last (0: keep all) and average_last must be >= 0"
            )
        if self.optim.grad_clip < 0 or self.optim.lr <= 0:
            raise ValueError("train.optim.lr must be > 0 and grad_clip >= 0 (0: no clipping)")


def keyed_generator(*key: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator that is a pure function of the integers `key`, e.g. (seed, step,
    micro): objectives draw from it so that a resumed run draws exactly what an uninterrupted
    one would, and no two micro-batches share a draw."""
    state = np.random.SeedSequence([k % 2**64 for k in key]).generate_state(1, np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state) >> 1)


class Objective(nn.Module):
    """A training objective: maps (model, batch, step, micro) to named scalar terms.

    `forward(model, batch, step, micro=0)` returns a dict with at least "loss" (the scalar to
    minimise); every other entry is logged. `step` is the optimizer step, `micro` the index of
    the micro-batch within it (0 … grad_accum − 1): an objective that draws random numbers
    keys them on (its seed, step, micro), so every micro-batch gets its own draw and a
    resumed run draws alike. Objectives that keep state (an EMA teacher) store it as tensors
    in `state_dict` — it is checkpointed with the run — and update it in `after_step`.
    """

    # True when `after_step` reads the model's weights (an EMA teacher): ZeRO-3, which leaves
    # each process a slice of every weight, refuses such objectives.
    reads_weights = False

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called after every optimizer step with the unwrapped model and the new step count."""


@dataclass
class Stage:
    """A phase of the curriculum: `objective` trains for `steps` optimizer steps."""

    name: str
    objective: Objective
    steps: int

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"stage {self.name!r} must have steps >= 1, got {self.steps}")


class _StopSignal:
    """Records SIGTERM/SIGINT so the loop can checkpoint and exit between steps."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopSignal:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.requested = True
        log.warning("received %s: checkpointing and stopping", signal.Signals(signum).name)

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]


@dataclass
class TermSums:
    """Logged terms summed over micro-batches and steps, with how many values each sum holds:
    a non-finite value (a skipped batch's NaN loss) never enters a mean."""

    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: int = 0
    audio_seconds: float = 0.0
    grad_norms: list[float] = field(default_factory=list)

    def add_terms(self, values: Mapping[str, Tensor]) -> None:
        for name, value in values.items():
            number = float(value.detach())
            if math.isfinite(number):
                self.sums[name] += number
                self.counts[name] += 1

    def merge(self, other: TermSums) -> None:
        for name, value in other.sums.items():
            self.sums[name] += value
            self.counts[name] += other.counts[name]
        self.examples += other.examples
        self.audio_seconds += other.audio_seconds
        self.grad_norms += other.grad_norms

    def mean(self, name: str) -> float:
        return self.sums[name] / self.counts[name] if self.counts.get(name) else math.nan

    def mean_grad_norm(self) -> float:
        return sum(self.grad_norms) / len(self.grad_norms) if self.grad_norms else math.nan


def launched_under_deepspeed() -> bool:
    """Whether `accelerate launch --use_deepspeed` (or a DeepSpeed launch config) started us."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def check_device_count(processes_here: int, devices: int) -> None:
    """Refuse, in one line, more processes on this machine than it has GPUs (each process
    drives one GPU; a second process on the same GPU would fail later, deep in CUDA)."""
    if devices and processes_here > devices:
        raise ConfigError(
            f"{processes_here} processes were launched on this machine but it has {devices} "
            f"GPU(s): launch with --num_processes {devices} × machines (the total over all "
            "machines), or fewer"
        )


def deepspeed_plugin(config: TrainConfig, micro_batch: int) -> DeepSpeedPlugin:
    """The DeepSpeed settings of a run: ZeRO stage and offloading from the launch config,
    gradient accumulation and clipping from the training config (DeepSpeed does both inside
    its engine, so they must agree). A launch config that sets them differently is refused."""
    owned = {
        "ACCELERATE_GRADIENT_ACCUMULATION_STEPS": ("train.grad_accum", config.grad_accum),
        "ACCELERATE_GRADIENT_CLIPPING": ("train.optim.grad_clip", config.optim.grad_clip),
    }
    for variable, (key, ours) in owned.items():
        launcher = os.environ.get(variable, "auto").lower()
        if launcher not in ("auto", "none", "") and float(launcher) != float(ours):
            raise ConfigError(
                f"the DeepSpeed launch config sets {variable.removeprefix('ACCELERATE_').lower()}"
                f"={launcher} but {key}={ours}: remove it from the launch config (the training "
                "config sets it)"
            )
    plugin = DeepSpeedPlugin(
        gradient_accumulation_steps=config.grad_accum,
        # DeepSpeed clips when the value is > 0, exactly like train.optim.grad_clip.
        gradient_clipping=config.optim.grad_clip,
    )
    # Only DeepSpeed's throughput bookkeeping uses it; the data loaders are the engine's.
    plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = micro_batch
    plugin.deepspeed_config.pop("train_batch_size", None)
    return plugin


def deepspeed_zero_stage(accelerator: Accelerator) -> int | None:
    """The ZeRO stage of a DeepSpeed run, None without DeepSpeed."""
    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return None
    return int(accelerator.state.deepspeed_plugin.zero_stage)


def whole_parameters(model: nn.Module, zero_stage: int | None) -> AbstractContextManager:
    """A context in which `model` holds its whole parameters: under ZeRO-3 each process keeps
    only a slice of every parameter, so they are gathered (collectively: every process must
    enter) and released on exit; otherwise nothing to do."""
    if zero_stage != 3:
        return nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None)


def make_accelerator(config: TrainConfig, run_dir: Path, micro_batch: int = 1) -> Accelerator:
    """The Accelerator for a run; the launcher's environment picks DDP/DeepSpeed and devices.

    `micro_batch` is the per-process batch size (DeepSpeed wants to know it). Under DeepSpeed
    without CUDA, DeepSpeed's CPU accelerator runs over a gloo process group (docs/pretraining.md,
    "Scaling out").
    """
    cuda = torch.cuda.is_available()
    if cuda:
        check_device_count(int(os.environ.get("LOCAL_WORLD_SIZE", 1)), torch.cuda.device_count())
    kwargs: dict[str, Any] = {}
    if launched_under_deepspeed():
        kwargs["deepspeed_plugin"] = deepspeed_plugin(config, micro_batch)
        if not cuda:
            # Accelerate's cpu=True would silently bypass DeepSpeed; without it, a CPU-only
            # torch needs the process-group backend named (DeepSpeed's CPU accelerator falls
            # back to gloo when oneCCL is absent).
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
            kwargs["kwargs_handlers"] = [InitProcessGroupKwargs(backend="gloo")]
    else:
        # Without CUDA, cpu=True lets a torchrun-launched group (`accelerate launch --multi_gpu
        # --num_processes N`) form a gloo process group instead of N independent runs.
        kwargs["cpu"] = not cuda
    return Accelerator(
        mixed_precision=config.precision.value,
        gradient_accumulation_steps=config.grad_accum,
        project_dir=str(run_dir),
        **kwargs,
    )


def spectrogram_image(audio: Tensor, n_fft: int = 512, range_db: float = 80.0) -> Tensor:
    """(T,) → (1, F, frames) log-magnitude image in [0, 1], low frequencies at the bottom."""
    window = torch.hann_window(n_fft)
    if audio.numel() < n_fft:
        audio = torch.nn.functional.pad(audio, (0, n_fft - audio.numel()))
    spec = torch.stft(audio, n_fft, n_fft // 4, window=window, return_complex=True).abs()
    db = 20 * torch.log10(spec + 1e-8)
    db = (db - db.max() + range_db).clamp_min(0) / range_db
    return db.flip(0).unsqueeze(0)


class Trainer:
    """Runs the stages of a curriculum on one model.

    Args:
        config: the engine's config section.
        model: the model to train (not yet prepared).
        stages: curriculum, run in order; the run ends after `config.max_steps` steps or when
            the stages are exhausted.
        batches: data source; `batches(position)` yields this process's micro-batches from
            `position` on (position counts micro-batches, identically on every process). A
            batch is a dict of tensors with at least "mixture" (B, T).
        run_dir: where checkpoints, TensorBoard logs and the exported model go.
        accelerator: from `make_accelerator` (created by the launcher's environment).
        sample_rate: of the batches, for audio-seconds/s and logged audio.
        validate: optional `validate(unwrapped_model, step) -> {name: value}`, run on the main
            process every `config.val_every` steps; names are logged under "val/".
    """

    def __init__(
        self,
        config: TrainConfig,
        model: nn.Module,
        stages: Sequence[Stage],
        batches: BatchSource,
        run_dir: str | Path,
        accelerator: Accelerator,
        sample_rate: int,
        validate: Validate | None = None,
    ) -> None:
        if not stages:
            raise ValueError("the curriculum needs at least one stage")
        if config.keep_last and config.average_last > max(1, config.keep_last):
            raise ValueError(
                f"train.average_last={config.average_last} needs train.keep_last ≥ it "
                f"(got {config.keep_last}): older checkpoints are deleted"
            )
        zero_stage = deepspeed_zero_stage(accelerator)
        if zero_stage is not None and config.average_last > 1:
            raise ValueError(
                "train.average_last averages DDP checkpoints' model.safetensors; DeepSpeed "
                "checkpoints hold ZeRO shards: set train.average_last=0 under DeepSpeed"
            )
        if zero_stage == 3:
            # Every process holds a slice of each parameter; whatever reads whole weights on one
            # process alone (validation, an EMA teacher's update) would wait forever for the others.
            # (Decided on the config, not on `validate`, which only the main process is given.)
            if config.val_every > 0:
                raise ValueError(
                    "validation runs the whole model on the main process, which ZeRO-3 "
                    "cannot do: set train.val_every=0, or use ZeRO-2"
                )
            readers = [s.name for s in stages if s.objective.reads_weights]
            if readers:
                raise ValueError(
                    f"the objectives of stages {readers} read the model's weights after each "
                    "step (an EMA teacher), which ZeRO-3's partitioned weights cannot give "
                    "them: use ZeRO-2"
                )
        self.zero_stage = zero_stage
        self.config, self.stages, self.batches = config, list(stages), batches
        self.run_dir, self.accelerator, self.sample_rate = Path(run_dir), accelerator, sample_rate
        self.validate = validate
        self.max_steps = min(config.max_steps, sum(s.steps for s in self.stages))
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=config.optim.lr,
            weight_decay=config.optim.weight_decay,
            betas=tuple(config.optim.betas),
        )
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        for stage in self.stages:
            stage.objective.to(accelerator.device)
        self.schedule = LRSchedule(self.optimizer, config.schedule, config.optim.lr, self.max_steps)
        self.step = 0
        self.counters: dict[str, int] = {"skipped_steps": 0, "skipped_batches": 0}
        self.writer = None

    # ---------------------------------------------------------------- state

    def stage_at(self, step: int) -> tuple[int, Stage]:
        end = 0
        for index, stage in enumerate(self.stages):
            end += stage.steps
            if step < end:
                return index, stage
        return len(self.stages) - 1, self.stages[-1]

    def _extra_state(self) -> dict[str, Tensor]:
        return {
            f"{i}.{key}": value
            for i, stage in enumerate(self.stages)
            for key, value in stage.objective.state_dict().items()
        }

    def save(self) -> Path | None:
        state = {
            "step": self.step,
            "counters": self.counters,
            "schedule": self.schedule.state_dict(),
            "data_position": self.step * self.config.grad_accum,
        }
        path = save_checkpoint(
            self.accelerator,
            self.run_dir,
            self.step,
            state,
            self._extra_state(),
            self.config.keep_last,
        )
        if path is not None and self.accelerator.is_main_process:
            log.info("checkpoint %s", path)
        return path

    def resume(self) -> bool:
        """Continue from the newest checkpoint that passes verification (see
        `load_latest_checkpoint`: newer bad ones are renamed `.corrupt` with a warning; when
        none passes, a one-line `CheckpointError` and nothing changed). False when there is
        none, or `config.resume` is off."""
        if not self.config.resume:
            return False
        found = load_latest_checkpoint(self.accelerator, self.run_dir, self._extra_state())
        if found is None:
            return False
        folder, state, extra = found
        self.step = int(state["step"])
        self.counters.update(state["counters"])
        self.schedule.load_state_dict(state["schedule"])
        for i, stage in enumerate(self.stages):
            prefix = f"{i}."
            own = {k[len(prefix) :]: v for k, v in extra.items() if k.startswith(prefix)}
            if own:
                stage.objective.load_state_dict(own)
        if self.accelerator.is_main_process:
            log.info("resumed from %s at step %d", folder, self.step)
        return True

    # ---------------------------------------------------------------- loop

    def _all_processes(self, flag: bool, any_: bool = False) -> bool:
        """Agree on a boolean across processes (all-of, or any-of)."""
        if self.accelerator.num_processes == 1:
            return flag
        value = torch.tensor([float(flag)], device=self.accelerator.device)
        gathered = self.accelerator.gather(value)
        return bool(gathered.max() > 0) if any_ else bool(gathered.min() > 0)

    def _train_step(self, data: Iterator[Batch], objective: Objective) -> TermSums:
        """One optimizer step over `grad_accum` micro-batches.

        A micro-batch whose loss is not finite is left out of the gradient; a step whose
        gradient norm is not finite (checked whether or not clipping is on) is not applied.
        Both are counted. Logged terms are sums over the micro-batches that counted.
        """
        acc = self.accelerator
        terms = TermSums()
        skip = False
        for micro in range(self.config.grad_accum):
            batch = {
                k: v.to(acc.device, non_blocking=True) if isinstance(v, Tensor) else v
                for k, v in next(data).items()
            }
            terms.examples += batch["mixture"].shape[0]
            terms.audio_seconds += (
                batch["mixture"].shape[0] * batch["mixture"].shape[-1] / self.sample_rate
            )
            with acc.accumulate(self.model):
                with acc.autocast():
                    values = objective(self.model, batch, self.step, micro)
                loss = values["loss"]
                # Every process must take the same branch, or DDP's all-reduce would hang.
                if self._all_processes(bool(torch.isfinite(loss))):
                    acc.backward(loss)
                    terms.add_terms(values)
                else:
                    skip = True
                    self.counters["skipped_batches"] += 1
                if acc.sync_gradients:
                    if not skip:
                        # Clipping to an infinite norm only measures it: a NaN/Inf gradient is
                        # caught with clipping off too. (DDP's gradients are already reduced,
                        # so every process sees the same norm and takes the same branch.)
                        limit = self.config.optim.grad_clip or math.inf
                        norm = acc.clip_grad_norm_(self.model.parameters(), limit)
                        if norm is not None:
                            skip = not math.isfinite(float(norm))
                            terms.grad_norms += [] if skip else [float(norm)]
                    if skip:
                        self.counters["skipped_steps"] += 1
                    else:
                        self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
        return terms

    def _log(self, window: TermSums, elapsed: float, lr: float) -> None:
        names = sorted(window.sums)
        local = [window.sums[n] for n in names] + [window.counts[n] for n in names]
        local += [window.examples, window.audio_seconds]
        values = torch.tensor(local, dtype=torch.float64, device=self.accelerator.device)
        if self.accelerator.num_processes > 1:
            values = self.accelerator.reduce(values, reduction="sum")  # sums over processes
        totals = values.tolist()
        count = len(names)
        means = {  # terms no micro-batch contributed to (all skipped) are left out
            name: totals[i] / totals[count + i]
            for i, name in enumerate(names)
            if totals[count + i] > 0
        }
        if not self.accelerator.is_main_process:
            return
        record = {
            "step": self.step,
            "lr": lr,
            **means,
            **({"grad_norm": window.mean_grad_norm()} if window.grad_norms else {}),
            "examples_per_s": totals[-2] / elapsed,
            "audio_seconds_per_s": totals[-1] / elapsed,
            **self.counters,
        }
        self._append_metrics(record)
        if self.writer is None:
            return
        for name, value in record.items():
            if name != "step":
                self.writer.add_scalar(f"train/{name}", value, self.step)

    def _append_metrics(self, record: dict[str, float]) -> None:
        with open(self.run_dir / METRICS_FILE, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def _log_value(self, tag: str, value: float | Tensor) -> None:
        if self.writer is None:
            return
        if not isinstance(value, Tensor):
            self.writer.add_scalar(tag, value, self.step)
            return
        audio = value.detach().float().cpu().flatten()
        peak = audio.abs().max().clamp_min(1e-8)
        self.writer.add_audio(tag, (audio / peak).unsqueeze(0), self.step, self.sample_rate)
        self.writer.add_image(f"{tag}/spectrogram", spectrogram_image(audio), self.step)

    def _validate(self) -> None:
        acc = self.accelerator
        metrics: dict[str, float] = {}
        if self.validate is not None and acc.is_main_process:
            model = acc.unwrap_model(self.model)
            was_training = model.training
            model.eval()
            with torch.no_grad(), acc.autocast():
                metrics = dict(self.validate(model, self.step))
            model.train(was_training)
            for name, value in metrics.items():
                self._log_value(f"val/{name}", value)
            scalars = {f"val/{k}": v for k, v in metrics.items() if not isinstance(v, Tensor)}
            self._append_metrics({"step": self.step, **scalars})
        # The plateau schedule must change the rate on every process alike.
        key = self.config.plateau_metric.removeprefix("val/")
        value = metrics.get(key, math.nan) if acc.is_main_process else 0.0
        metric = torch.tensor([value], device=acc.device)
        if acc.num_processes > 1:
            metric = acc.reduce(metric, reduction="sum")  # only the main process holds a value
        self.schedule.report(float(metric))
        acc.wait_for_everyone()

    def fit(self) -> Path:
        """Train to the end (or until a stop signal) and return the run directory."""
        acc = self.accelerator
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.resume()
        if acc.is_main_process:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        self.model.train()
        data = self.batches(self.step * self.config.grad_accum)
        progress = tqdm(
            total=self.max_steps,
            initial=self.step,
            disable=not acc.is_main_process,
            desc="train",
            dynamic_ncols=True,
        )
        window, tick = TermSums(), time.perf_counter()
        last_saved = self.step
        with _StopSignal() as stop:
            while self.step < self.max_steps:
                _, stage = self.stage_at(self.step)
                lr = self.schedule.apply(self.step)
                window.merge(self._train_step(data, stage.objective))
                self.step += 1
                stage.objective.after_step(acc.unwrap_model(self.model), self.step)
                progress.update(1)
                if self.step % self.config.log_every == 0 or self.step == self.max_steps:
                    progress.set_postfix(stage=stage.name, loss=f"{window.mean('loss'):.2f}")
                    self._log(window, time.perf_counter() - tick, lr)
                    window, tick = TermSums(), time.perf_counter()
                if self.config.val_every > 0 and self.step % self.config.val_every == 0:
                    self._validate()
                stopping = self._all_processes(stop.requested, any_=True)
                if stopping or self.step % self.config.checkpoint_every == 0:
                    self.save()
                    last_saved = self.step
                if stopping:
                    progress.close()
                    if acc.is_main_process:
                        log.warning("stopped at step %d; run again to resume", self.step)
                    return self.run_dir
        progress.close()
        if last_saved != self.step:
            self.save()
        if self.config.average_last > 1:
            self._average_checkpoints()
        self.export(self.run_dir / "model")
        if self.writer is not None:
            self.writer.close()
        return self.run_dir

    def _average_checkpoints(self) -> None:
        folders = list_checkpoints(self.run_dir)[-self.config.average_last :]
        model = self.accelerator.unwrap_model(self.model)
        model.load_state_dict(average_model_weights(folders))
        if self.accelerator.is_main_process:
            log.info("exporting the average of %s", ", ".join(f.name for f in folders))

    def export(self, folder: Path) -> None:
        """Save the model as safetensors + config (`save_pretrained`), on the main process.

        Under ZeRO-3 the parameters' slices are gathered first (every process must call this).
        Written into a temporary sibling and renamed when complete (`write_folder_atomically`),
        so a kill never leaves a torn export and a re-export replaces the old one only whole.
        """
        self.accelerator.wait_for_everyone()
        model = self.accelerator.unwrap_model(self.model)
        with whole_parameters(model, self.zero_stage):
            if not self.accelerator.is_main_process:
                return
            try:
                write_folder_atomically(folder, model.save_pretrained)
            except WRITE_ERRORS as error:
                raise OSError(
                    f"could not export the model to {folder} ({error}); the checkpoints are "
                    "kept: run the same command again to export"
                ) from error
            log.info("exported the model to %s", folder)
