"""A complete, tiny training run for the engine tests; also launched as a script.

    python tiny_run.py RUN_DIR STEPS [--global-batch B] [--nan-at STEP] [--hang-at STEP]
        [--model tiny|backbone] [--grad-accum K] [--grad-clip C]

Writes one JSON line per micro-batch to RUN_DIR/losses.<rank>.jsonl and the final parameters
to RUN_DIR/params.safetensors (main process). `--model backbone` trains a real (tiny) wildsep
Backbone, whose export `finetune/tuss.py --init` and `wildsep separate` accept; it needs the
repository root on PYTHONPATH (for tests/tiny.py).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from wildsep.engine import Objective, Stage, TrainConfig, Trainer, make_accelerator
from wildsep.engine.trainer import whole_parameters
from wildsep.objectives import MixITObjective, MixITObjectiveConfig

LENGTH = 256


class TinySeparator(nn.Module):
    """(B, T) → (B, 4, T): enough to train MixIT on."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(1, 8, 9, padding=4), nn.Tanh(), nn.Conv1d(8, 4, 9, padding=4)
        )

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        return self.net(mixture.unsqueeze(1))

    def save_pretrained(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.state_dict(), folder / "model.safetensors")


def build_model(kind: str) -> nn.Module:
    """The tiny convolution, or a real wildsep Backbone of the tiny test geometry."""
    if kind == "tiny":
        return TinySeparator()
    from tests.tiny import TINY_SEPARATOR
    from wildsep.models import from_preset

    return from_preset("backbone-medium", **TINY_SEPARATOR, n_outputs=4)


def batches(global_batch: int, rank: int, world: int, nan_at: int, hang_at: int):
    """Micro-batch i is a pure function of i; each process takes its slice of the global batch."""

    def source(position: int):
        i = position
        while True:
            if i == hang_at:
                time.sleep(600)  # stands in for a long step, so the test can kill us here
            gen = torch.Generator().manual_seed(i)
            refs = torch.randn(global_batch, 2, LENGTH, generator=gen)
            if i == nan_at:
                refs[0, 0, 0] = float("nan")
            local = refs[rank * global_batch // world : (rank + 1) * global_batch // world]
            yield {"mixture": local.sum(1), "references": local}
            i += 1

    return source


class Recording(Objective):
    """Wraps an objective and appends every micro-batch's loss to a file; at step
    `nan_grad_at` it adds a term that is 0 with a NaN gradient (√0 · 0)."""

    def __init__(self, inner: Objective, path: Path, nan_grad_at: int = -1) -> None:
        super().__init__()
        self.inner, self.path, self.nan_grad_at = inner, path, nan_grad_at

    def forward(self, model, batch, step, micro=0):
        terms = self.inner(model, batch, step, micro)
        if step == self.nan_grad_at:
            first = next(model.parameters())
            terms["loss"] = terms["loss"] + torch.sqrt(first.sum() * 0)
        record = {"step": step, "micro": micro, "loss": float(terms["loss"].detach())}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        return terms


def run(
    run_dir: Path,
    steps: int,
    global_batch: int = 4,
    nan_at: int = -1,
    hang_at: int = -1,
    checkpoint_every: int = 2,
    nan_grad_at: int = -1,
    grad_clip: float = 5.0,
    model: str = "tiny",
    **overrides,
) -> Trainer:
    torch.manual_seed(0)
    overrides.setdefault("log_every", 1)
    config = TrainConfig(
        max_steps=steps,
        checkpoint_every=checkpoint_every,
        val_every=0,
        keep_last=2,
        **overrides,
    )
    config.optim.lr = 1e-2
    config.optim.grad_clip = grad_clip
    config.schedule.warmup_steps = 2
    world = int(os.environ.get("WORLD_SIZE", 1))
    accelerator = make_accelerator(config, run_dir, micro_batch=global_batch // world)
    rank, world = accelerator.process_index, accelerator.num_processes
    objective = Recording(
        MixITObjective(MixITObjectiveConfig()), run_dir / f"losses.{rank}.jsonl", nan_grad_at
    )
    trainer = Trainer(
        config,
        build_model(model),
        [Stage("mixit", objective, steps)],
        batches(global_batch, rank, world, nan_at, hang_at),
        run_dir,
        accelerator,
        sample_rate=8000,
    )
    trainer.fit()
    unwrapped = accelerator.unwrap_model(trainer.model)
    with whole_parameters(unwrapped, trainer.zero_stage):  # every process gathers under ZeRO-3
        if accelerator.is_main_process:
            state = {k: v.detach().clone().contiguous() for k, v in unwrapped.state_dict().items()}
            save_file(state, run_dir / "params.safetensors")
    return trainer


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("steps", type=int)
    parser.add_argument("--global-batch", type=int, default=4)
    parser.add_argument("--nan-at", type=int, default=-1)
    parser.add_argument("--hang-at", type=int, default=-1)
    parser.add_argument("--model", choices=["tiny", "backbone"], default="tiny")
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--grad-clip", type=float, default=5.0)
    args = parser.parse_args()
    run(
        args.run_dir,
        args.steps,
        args.global_batch,
        args.nan_at,
        args.hang_at,
        grad_clip=args.grad_clip,
        model=args.model,
        grad_accum=args.grad_accum,
    )
