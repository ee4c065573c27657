"""The training engine shared by pre-training and fine-tuning.

Step-based training on Accelerate (CPU, one or many GPUs, DDP or DeepSpeed ZeRO-2 through
Accelerate's plugin) with bf16/fp16/fp32, gradient accumulation and clipping, AdamW, warm-up
plus constant/cosine/plateau schedules, a curriculum of stages (e.g. MixIT, then
Self-Remixing), TensorBoard logging, periodic validation, atomic rotating checkpoints,
automatic resume, and a graceful stop on SIGTERM/SIGINT that checkpoints first.

Determinism: every batch is a function of its position (the data source is asked for the
batches from position `step × grad_accum` on), and objectives derive their randomness from the
step, so a run resumed at step k sees and does exactly what an uninterrupted run would.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import Tensor, nn
from tqdm.auto import tqdm

from wildsep.engine.checkpoint import (
    average_model_weights,
    list_checkpoints,
    load_latest_checkpoint,
    save_checkpoint,
    write_folder_atomically,
)
from wildsep.engine.schedule import LRSchedule, ScheduleConfig

log = logging.getLogger(__name__)

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
    seed: int = 0
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    plateau_metric: str = "val/loss"  # the validation scalar the plateau schedule watches
    log_every: int = 50
    val_every: int = 1000
    checkpoint_every: int = 1000
    keep_last: int = 3
    # Export the mean of the last K checkpoints' weights (TUSS evaluates averaged checkpoints);
    # 0 or 1 exports the final weights. Needs keep_last ≥ K.
    average_last: int = 0
    resume: bool = True  # continue from the newest checkpoint in the run directory


class Objective(nn.Module):
    """A training objective: maps (model, batch, step) to named scalar terms.

    `forward` returns a dict with at least "loss" (the scalar to minimise); every other entry
    is logged. Objectives that keep state (an EMA teacher) store it as tensors in `state_dict`
    — it is checkpointed with the run — and update it in `after_step`.
    """

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called after every optimizer step with the unwrapped model and the new step count."""


@dataclass
class Stage:
    """A phase of the curriculum: `objective` trains for `steps` optimizer steps."""

    name: str
    objective: Objective
    steps: int


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


def make_accelerator(config: TrainConfig, run_dir: Path) -> Accelerator:
    """The Accelerator for a run; the launcher's environment picks DDP/DeepSpeed and devices."""
    return Accelerator(
        # Without CUDA, cpu=True lets a torchrun-launched group (`accelerate launch --multi_gpu
        # --num_processes N`) form a gloo process group instead of N independent runs.
        cpu=not torch.cuda.is_available(),
        mixed_precision=config.precision.value,
        gradient_accumulation_steps=config.grad_accum,
        project_dir=str(run_dir),
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
        if config.average_last > max(1, config.keep_last):
            raise ValueError(
                f"train.average_last={config.average_last} needs train.keep_last ≥ it "
                f"(got {config.keep_last}): older checkpoints are deleted"
            )
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

    def _train_step(self, data: Iterator[Batch], objective: Objective) -> dict[str, float]:
        """One optimizer step over `grad_accum` micro-batches; returns the logged terms."""
        acc = self.accelerator
        terms_sum: dict[str, float] = defaultdict(float)
        skip = False
        examples = 0
        audio_seconds = 0.0
        grad_norm = math.nan
        for _ in range(self.config.grad_accum):
            batch = {
                k: v.to(acc.device, non_blocking=True) if isinstance(v, Tensor) else v
                for k, v in next(data).items()
            }
            examples += batch["mixture"].shape[0]
            audio_seconds += (
                batch["mixture"].shape[0] * batch["mixture"].shape[-1] / self.sample_rate
            )
            with acc.accumulate(self.model):
                with acc.autocast():
                    terms = objective(self.model, batch, self.step)
                loss = terms["loss"]
                # Every process must take the same branch, or DDP's all-reduce would hang.
                if self._all_processes(bool(torch.isfinite(loss))):
                    acc.backward(loss)
                else:
                    skip = True
                    self.counters["skipped_batches"] += 1
                for name, value in terms.items():
                    terms_sum[name] += float(value.detach()) / self.config.grad_accum
                if acc.sync_gradients:
                    if self.config.optim.grad_clip > 0 and not skip:
                        norm = acc.clip_grad_norm_(
                            self.model.parameters(), self.config.optim.grad_clip
                        )
                        grad_norm = float(norm) if norm is not None else math.nan
                        skip = skip or (norm is not None and not math.isfinite(grad_norm))
                    if skip:
                        self.counters["skipped_steps"] += 1
                    else:
                        self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
        terms_sum["grad_norm"] = grad_norm
        terms_sum["examples"] = examples
        terms_sum["audio_seconds"] = audio_seconds
        return terms_sum

    def _log(self, sums: dict[str, float], count: int, elapsed: float, lr: float) -> None:
        names = sorted(sums)
        values = torch.tensor([sums[n] for n in names], device=self.accelerator.device)
        values = self.accelerator.reduce(values, reduction="sum")  # sums over processes
        totals = dict(zip(names, values.tolist(), strict=True))
        procs = self.accelerator.num_processes
        if not self.accelerator.is_main_process or self.writer is None:
            return
        for name in names:
            if name in ("examples", "audio_seconds"):
                continue
            self.writer.add_scalar(f"train/{name}", totals[name] / (count * procs), self.step)
        self.writer.add_scalar("train/lr", lr, self.step)
        self.writer.add_scalar("train/examples_per_s", totals["examples"] / elapsed, self.step)
        self.writer.add_scalar(
            "train/audio_seconds_per_s", totals["audio_seconds"] / elapsed, self.step
        )
        for name, value in self.counters.items():
            self.writer.add_scalar(f"train/{name}", value, self.step)

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
        sums: dict[str, float] = defaultdict(float)
        count, tick = 0, time.perf_counter()
        last_saved = self.step
        with _StopSignal() as stop:
            while self.step < self.max_steps:
                _, stage = self.stage_at(self.step)
                lr = self.schedule.apply(self.step)
                for name, value in self._train_step(data, stage.objective).items():
                    sums[name] += value
                count += 1
                self.step += 1
                stage.objective.after_step(acc.unwrap_model(self.model), self.step)
                progress.update(1)
                if self.step % self.config.log_every == 0 or self.step == self.max_steps:
                    progress.set_postfix(stage=stage.name, loss=f"{sums['loss'] / count:.2f}")
                    self._log(dict(sums), count, time.perf_counter() - tick, lr)
                    sums, count, tick = defaultdict(float), 0, time.perf_counter()
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

        Written into a temporary sibling and renamed when complete (`write_folder_atomically`),
        so a kill never leaves a torn export and a re-export replaces the old one only whole.
        """
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            model = self.accelerator.unwrap_model(self.model)
            write_folder_atomically(folder, model.save_pretrained)
            log.info("exported the model to %s", folder)
