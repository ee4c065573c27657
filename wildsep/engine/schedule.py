"""Learning-rate schedules: linear warm-up, then constant, cosine decay, or reduce-on-plateau.

The state is a few plain numbers (JSON in checkpoints), so resuming never unpickles anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch


class ScheduleKind(str, Enum):
    constant = "constant"
    cosine = "cosine"
    plateau = "plateau"


@dataclass
class ScheduleConfig:
    kind: ScheduleKind = ScheduleKind.plateau
    warmup_steps: int = 1000
    # cosine: decays from the peak to min_lr over the steps after warm-up
    min_lr: float = 0.0
    # plateau (ReduceLROnPlateau on the validation metric, as in TUSS): factor and patience in
    # validation rounds; a round improves when the metric drops by more than `threshold`.
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    plateau_threshold: float = 1e-3


class LRSchedule:
    """Sets the optimizer's learning rate from the step and (for plateau) validation metrics."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, config: ScheduleConfig, peak_lr: float, steps: int
    ) -> None:
        self.optimizer, self.config, self.peak_lr, self.steps = optimizer, config, peak_lr, steps
        self.plateau_scale = 1.0
        self.best = math.inf
        self.bad_rounds = 0

    def lr_at(self, step: int) -> float:
        c = self.config
        warmup = min(1.0, (step + 1) / c.warmup_steps) if c.warmup_steps > 0 else 1.0
        if c.kind == ScheduleKind.cosine and step >= c.warmup_steps:
            progress = min(1.0, (step - c.warmup_steps) / max(1, self.steps - c.warmup_steps))
            return c.min_lr + (self.peak_lr - c.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        return self.peak_lr * warmup * self.plateau_scale

    def apply(self, step: int) -> float:
        """Set the learning rate for optimizer step `step` (0-based) and return it."""
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def report(self, metric: float) -> None:
        """Feed a validation metric (lower is better); plateau halves the rate after patience."""
        if self.config.kind != ScheduleKind.plateau or not math.isfinite(metric):
            return
        if metric < self.best - self.config.plateau_threshold:
            self.best, self.bad_rounds = metric, 0
            return
        self.bad_rounds += 1
        if self.bad_rounds > self.config.plateau_patience:
            self.plateau_scale *= self.config.plateau_factor
            self.bad_rounds = 0

    def state_dict(self) -> dict:
        return {
            "plateau_scale": self.plateau_scale,
            "best": self.best,
            "bad_rounds": self.bad_rounds,
        }

    def load_state_dict(self, state: dict) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.best = float(state["best"])
        self.bad_rounds = int(state["bad_rounds"])
