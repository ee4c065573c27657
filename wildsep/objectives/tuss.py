"""Supervised TUSS objective: one estimate per prompt, thresholded SNR with zero references,
PIT only among identical prompts, and prompt dropout."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from losses import pit, tuss_loss
from wildsep.engine import Objective

Prompts = list[list[str]]


@dataclass
class TUSSObjectiveConfig:
    snr_max: float = 30.0
    zero_ref_weight: float = 0.1  # weight of the loss of outputs whose reference is silent
    # With this probability a batch drops `1..max_dropped` prompts that occur once in their
    # example, with their references; the mixture keeps those sources, so the model learns to
    # return only what it is asked for.
    prompt_dropout: float = 0.0
    max_dropped: int = 1
    seed: int = 0


def prompt_groups(prompts: Prompts) -> Tensor:
    """(B, N) integer labels: equal names share a label (PIT may swap only within a label)."""
    vocabulary = {name: i for i, name in enumerate(sorted({p for row in prompts for p in row}))}
    return torch.tensor([[vocabulary[p] for p in row] for row in prompts])


def drop_prompts(
    references: Tensor, prompts: Prompts, count: int, rng: np.random.Generator
) -> tuple[Tensor, Prompts]:
    """Remove `count` non-duplicated prompts per example, and their references.

    Args:
        references: (B, N, T).
        prompts: B lists of N names.
    Returns:
        references (B, N − count, T) and the shortened prompt lists (order kept). If some
        example has fewer than `count` non-duplicated prompts, or fewer than count + 1 prompts,
        nothing is dropped.
    """
    keep_rows = []
    for row in prompts:
        single = [i for i, name in enumerate(row) if row.count(name) == 1]
        if len(single) < count or len(row) <= count:
            return references, prompts
        dropped = set(rng.choice(single, size=count, replace=False).tolist())
        keep_rows.append([i for i in range(len(row)) if i not in dropped])
    keep = torch.tensor(keep_rows, device=references.device)  # (B, N − count)
    kept = references[torch.arange(len(prompts), device=references.device).unsqueeze(1), keep]
    return kept, [[row[i] for i in k] for row, k in zip(prompts, keep_rows, strict=True)]


class TUSSObjective(Objective):
    """Batch: "mixture" (B, T), "references" (B, N, T), "prompts" (B lists of N names).
    The model maps (mixture, prompts) → (B, N, T)."""

    def __init__(self, config: TUSSObjectiveConfig) -> None:
        super().__init__()
        self.config = config

    def forward(
        self, model: nn.Module, batch: dict, step: int, micro: int = 0
    ) -> dict[str, Tensor]:
        c = self.config
        mixture, references, prompts = batch["mixture"], batch["references"], batch["prompts"]
        # keyed on the micro-batch: resumed runs drop alike, accumulated micro-batches differ
        rng = np.random.default_rng([c.seed, step, micro])
        dropped = 0
        if c.prompt_dropout > 0 and rng.random() < c.prompt_dropout:
            count = int(rng.integers(1, c.max_dropped + 1))
            references, prompts = drop_prompts(references, prompts, count, rng)
            dropped = batch["references"].shape[1] - references.shape[1]
        estimates = model(mixture, prompts)
        loss_fn = functools.partial(tuss_loss, snr_max=c.snr_max, zero_ref_weight=c.zero_ref_weight)
        result = pit(
            estimates,
            references,
            loss=loss_fn,
            mixture=mixture,
            groups=prompt_groups(prompts).to(mixture.device),
        )
        return {
            "loss": result.loss.mean(),
            "num_prompts": torch.tensor(float(len(prompts[0]))),
            "dropped_prompts": torch.tensor(float(dropped)),
        }
