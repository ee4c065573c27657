"""Self-Remixing / RemixIT pre-training objective with an EMA teacher."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from losses import batch_shuffle, keep_most_energetic, mixture_consistency, remix, remixing_loss
from wildsep.engine import Objective, keyed_generator


@dataclass
class RemixingObjectiveConfig:
    num_sources: int = 0  # K sources per mixture (the K most energetic outputs); 0 = all M
    self_remixing_weight: float = 1.0
    remixit_weight: float = 0.0
    snr_max: float = 30.0
    constrained: bool = True  # each pseudo-mixture draws its K sources from K different mixtures
    channel_shuffle: bool = False
    ema_decay: float = 0.8  # α of θ_T ← α·θ_T + (1 − α)·θ_S
    ema_every: int = 1000  # steps between teacher updates ("per epoch"); 1 = per step
    per_step_decay: bool = False  # update every step with α^(1/ema_every) instead
    seed: int = 0


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """θ_T ← decay·θ_T + (1 − decay)·θ_S for every parameter and floating buffer."""
    student_state = student.state_dict()
    for name, value in teacher.state_dict().items():
        if value.is_floating_point():
            value.lerp_(student_state[name].to(value.dtype), 1 - decay)
        else:
            value.copy_(student_state[name])


class RemixingObjective(Objective):
    """Teacher-student remixing (Saijo & Ogawa 2023; RemixIT).

    The teacher (a frozen copy of the model, initialised from the student when this objective
    first runs — so after a MixIT stage it starts from the MixIT model) separates each mixture;
    its outputs are made mixture-consistent, shuffled across the batch into pseudo-mixtures,
    and the student separates those. Shuffles derive from (seed, step, micro), so a resumed run
    draws the same ones. Batch: "mixture" (B, T). The model maps (B, T) → (B, M, T).
    """

    def __init__(self, config: RemixingObjectiveConfig, model: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.teacher = copy.deepcopy(model).requires_grad_(False).eval()
        # Buffers, so whether the teacher was initialised is part of the checkpoint.
        self.register_buffer("teacher_ready", torch.zeros((), dtype=torch.bool))

    def train(self, mode: bool = True) -> RemixingObjective:
        super().train(mode)
        self.teacher.eval()  # the teacher always runs in inference mode
        return self

    def _sources(self, outputs: Tensor) -> Tensor:
        k = self.config.num_sources
        if 0 < k < outputs.shape[1]:
            outputs = keep_most_energetic(outputs, k)
        return outputs

    def forward(
        self, model: nn.Module, batch: dict[str, Tensor], step: int, micro: int = 0
    ) -> dict[str, Tensor]:
        c = self.config
        student_model = model.module if hasattr(model, "module") else model
        if not bool(self.teacher_ready):
            self.teacher.load_state_dict(student_model.state_dict())
            self.teacher_ready.fill_(True)
        mixture = batch["mixture"]
        with torch.no_grad():
            teacher = self._sources(self.teacher(mixture))
            teacher = mixture_consistency(teacher.float(), mixture.float())
        batch_size, k = teacher.shape[:2]
        generator = keyed_generator(c.seed, step, micro)
        shuffle = batch_shuffle(
            batch_size,
            k,
            constrained=c.constrained,
            channel_shuffle=c.channel_shuffle,
            generator=generator,
            device=mixture.device,
        )
        _, pseudo = remix(teacher, shuffle)
        student = self._sources(model(pseudo))
        out = remixing_loss(
            student,
            teacher,
            mixture,
            shuffle,
            self_remixing_weight=c.self_remixing_weight,
            remixit_weight=c.remixit_weight,
            snr_max=c.snr_max,
        )
        return {
            "loss": out.loss.mean(),
            "self_remixing": out.self_remixing.mean(),
            "remixit": out.remixit.mean(),
        }

    reads_weights = True  # the EMA teacher follows the student

    def after_step(self, model: nn.Module, step: int) -> None:
        c = self.config
        if not bool(self.teacher_ready):
            return
        if c.per_step_decay:
            ema_update(self.teacher, model, c.ema_decay ** (1 / max(1, c.ema_every)))
        elif step % max(1, c.ema_every) == 0:
            ema_update(self.teacher, model, c.ema_decay)
