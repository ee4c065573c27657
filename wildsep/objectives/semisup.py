"""Demucs-style semi-supervised remixing (reference §5).

A mined segment x_u of unlabeled audio in which class i is absent is remixed with a labeled
source s_i of that class: x' = x_u + g·s_i (`wildsep.data.RemixDataset`). The weak loss is

    ℓ(ŝ_i, s_i) + ℓ(Σ_{j≠i} ŝ_j, x_u)

with ℓ the TUSS per-source loss (`losses.tuss_loss`: thresholded SNR, capped at `snr_max`, for
active references; the zero-reference form for a silent one, so a quiet crop never gives an
infinite loss). How ŝ_i and Σ_{j≠i} ŝ_j are read off the model's outputs:

- prompt-conditioned (TUSS): prompts [class i, background prompt] give two outputs; ŝ_i is the
  first, Σ_{j≠i} ŝ_j is the second (the background prompt asks for "everything else").
- unconditional (M outputs, pre-training), `assignment="single"`: ŝ_i is the output k that
  minimises ℓ(ŝ_k, s_i) + ℓ(Σ_{j≠k} ŝ_j, x_u) — the formula as written, with i found by PIT
  over the M candidates.
- unconditional with named outputs (Demucs: output s is stem s), `assignment="named"`: ŝ_i
  is the output named after class i, as in the Demucs paper; Σ_{j≠i} ŝ_j the sum of the others.
- unconditional, `assignment="group"`: MixIT with (s_i, x_u) as the two "mixtures": the
  outputs split into two groups A₁, A₂ minimising ℓ(A₁ŝ, s_i) + ℓ(A₂ŝ, x_u), so s_i may span
  several outputs. `losses.mixit` averages over its N=2 references; this is twice its loss.

Remix batches are interleaved with the recipe's own batches at a fixed ratio, deterministically
by position (:func:`interleave_batches`), and a :class:`SemiSupervisedObjective` applies the
weak loss to them and the stage's objective to the others. This module also holds the
presence classifier's training objective (:class:`PresenceObjective`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses import mixit, tuss_loss
from wildsep.data import (
    DataConfig,
    RemixDataset,
    build_corpus_index,
    build_remix_loader,
    read_mined,
)
from wildsep.engine import Objective, Stage, keyed_generator, positioned_batches
from wildsep.engine.trainer import Batch, BatchSource
from wildsep.models.presence import REFERENCES, class_presence, presence_targets


class Assignment(str, Enum):
    single = "single"
    group = "group"
    named = "named"  # the output named after the absent class (fixed stems)


@dataclass
class SemiSupConfig:
    """The optional `semisup` section of the pre-training and fine-tuning recipes."""

    manifest: str | None = None  # mined manifest (pretrain/mine.py); None = off
    ratio: float = 0.25  # fraction of training batches that are remixes, in (0, 1]
    classes: list[str] | None = None  # use only segments missing these classes; None = all
    min_confidence: float = 0.0  # and only segments mined with at least this confidence
    gain_db: list[float] = field(
        default_factory=lambda: [-10.0, 0.0]
    )  # g, s_i vs x_u (both unit RMS)
    weight: float = 1.0  # of the weak loss relative to the supervised one
    snr_max: float = 30.0
    zero_ref_weight: float = 0.1
    assignment: Assignment = Assignment.single  # unconditional models only
    # TUSS: the prompt that asks for everything but class i ("rest" means "all that the other
    # prompts of the call do not ask for"); per-class exceptions in `background_prompts`.
    background_prompt: str = "rest"
    background_prompts: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"semisup.ratio must be in [0, 1], got {self.ratio}")
        if len(self.gain_db) != 2 or self.gain_db[0] > self.gain_db[1]:
            raise ValueError(f"semisup.gain_db must be [low, high], got {self.gain_db}")

    @property
    def enabled(self) -> bool:
        return bool(self.manifest) and self.ratio > 0


class WeakLoss(NamedTuple):
    loss: Tensor  # (B,) ℓ(ŝ_i, s_i) + ℓ(Σ_{j≠i} ŝ_j, x_u)
    source: Tensor  # (B,) ℓ(ŝ_i, s_i)
    background: Tensor  # (B,) ℓ(Σ_{j≠i} ŝ_j, x_u)
    estimates: Tensor  # (B, 2, T) the (ŝ_i, Σ_{j≠i} ŝ_j) that were scored


def weak_remix_loss(
    est: Tensor,
    references: Tensor,
    *,
    conditional: bool,
    assignment: Assignment | str = Assignment.single,
    snr_max: float = 30.0,
    zero_ref_weight: float = 0.1,
    index: Tensor | None = None,
) -> WeakLoss:
    """The weak loss of a remix batch (module docstring).

    Args:
        est: (B, 2, T) outputs for prompts [class i, background] if `conditional`, else the
            (B, M, T) outputs of an unconditional model.
        references: (B, 2, T) = (g·s_i, x_u); their sum is the input x'.
        index: (B,) long, `assignment="named"` only: the output of class i in each example.
    """
    est, references = est.float(), references.float()
    mixture = references.sum(1, keepdim=True)  # (B, 1, T)

    def loss(e: Tensor, r: Tensor) -> Tensor:
        return tuss_loss(e, r, mixture, snr_max=snr_max, zero_ref_weight=zero_ref_weight)

    if conditional:
        pair = est[:, :2]
    elif Assignment(assignment) == Assignment.named:
        if index is None:
            raise ValueError("assignment='named' needs the output index of each example")
        rows = torch.arange(est.shape[0], device=est.device)
        k = index.to(est.device)
        pair = torch.stack([est[rows, k], est.sum(1) - est[rows, k]], 1)
    elif Assignment(assignment) == Assignment.single:
        rest = est.sum(1, keepdim=True) - est  # (B, M, T): Σ_{j≠k} ŝ_j for every k
        source, background = references[:, :1], references[:, 1:]
        totals = loss(est, source) + loss(rest, background)  # (B, M)
        k = totals.detach().argmin(1)
        rows = torch.arange(est.shape[0], device=est.device)
        pair = torch.stack([est[rows, k], rest[rows, k]], 1)
    else:
        pair = mixit(est, references, snr_max=snr_max).remixed
    terms = loss(pair, references)  # (B, 2)
    return WeakLoss(terms.sum(1), terms[:, 0], terms[:, 1], pair)


class RemixObjective(Objective):
    """The weak loss on a remix batch {"mixture" (B, T), "references" (B, 2, T), "prompts"}.

    A conditional model is called as model(mixture, prompts), an unconditional one as
    model(mixture). `outputs` names an unconditional model's outputs (assignment "named").
    """

    def __init__(
        self, config: SemiSupConfig, conditional: bool, outputs: Sequence[str] = ()
    ) -> None:
        super().__init__()
        self.config, self.conditional, self.outputs = config, conditional, list(outputs)

    def forward(
        self, model: nn.Module, batch: Batch, step: int, micro: int = 0
    ) -> dict[str, Tensor]:
        c = self.config
        mixture = batch["mixture"]
        est = model(mixture, batch["prompts"]) if self.conditional else model(mixture)
        index = None
        if not self.conditional and c.assignment == Assignment.named:
            names = [prompts[0] for prompts in batch["prompts"]]
            index = torch.tensor([self.outputs.index(name) for name in names])
        weak = weak_remix_loss(
            est,
            batch["references"],
            conditional=self.conditional,
            assignment=c.assignment,
            snr_max=c.snr_max,
            zero_ref_weight=c.zero_ref_weight,
            index=index,
        )
        return {
            "loss": c.weight * weak.loss.mean(),
            "weak_source": weak.source.mean(),
            "weak_background": weak.background.mean(),
        }


class SemiSupervisedObjective(Objective):
    """A stage's objective on its own batches, the weak loss on remix batches (``kind ==
    "remix"``). Every step logs `remix_batches` (1 or 0): the engine averages terms over all
    steps of a log window, so `weak_*` there are diluted by that fraction."""

    def __init__(self, supervised: Objective, remix: RemixObjective) -> None:
        super().__init__()
        self.supervised, self.remix = supervised, remix

    def forward(
        self, model: nn.Module, batch: Batch, step: int, micro: int = 0
    ) -> dict[str, Tensor]:
        is_remix = batch.get("kind") == "remix"
        terms = (self.remix if is_remix else self.supervised)(model, batch, step, micro)
        return {**terms, "remix_batches": torch.tensor(float(is_remix))}

    def after_step(self, model: nn.Module, step: int) -> None:
        self.supervised.after_step(model, step)

    @property
    def reads_weights(self) -> bool:  # type: ignore[override]
        return self.supervised.reads_weights

    # The weak loss keeps no state, so checkpoints hold the stage objective's state under its
    # own names: a run can switch remixing on or off and still resume (e.g. its EMA teacher).
    def state_dict(self, *args, **kwargs):
        return self.supervised.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.supervised.load_state_dict(state_dict, strict=strict, assign=assign)


def remix_count(position: int, ratio: Fraction) -> int:
    """Remix batches among positions [0, position): ⌊position·ratio⌋ (evenly spread)."""
    return math.floor(position * ratio)


def interleave_batches(supervised: BatchSource, remix: BatchSource, ratio: float) -> BatchSource:
    """Position p is a remix batch iff ⌊(p+1)·r⌋ > ⌊p·r⌋, else the next supervised batch.

    Both sources are positioned at their own counts (p − ⌊p·r⌋ supervised, ⌊p·r⌋ remix
    batches came before p), so the batch at any position is a pure function of the position:
    a resumed run sees exactly the batches an uninterrupted one would. `r` is taken as an
    exact fraction (denominator ≤ 1000) so that float rounding never shifts the pattern.
    """
    r = Fraction(ratio).limit_denominator(1000)

    def source(position: int) -> Iterator[Batch]:
        before = remix_count(position, r)
        own, weak = supervised(position - before), remix(before)
        while True:
            is_remix = remix_count(position + 1, r) > remix_count(position, r)
            yield next(weak) if is_remix else next(own)
            position += 1

    return source


def background_prompts(config: SemiSupConfig, classes: Sequence[str]) -> dict[str, str]:
    """The background prompt of each mined class."""
    return {c: config.background_prompts.get(c, config.background_prompt) for c in classes}


def with_remix_batches(
    config: SemiSupConfig,
    data: DataConfig,
    stages: Sequence[Stage],
    batches: BatchSource,
    *,
    conditional: bool,
    prompts: Sequence[str] = (),
    rank: int = 0,
    world_size: int = 1,
    pools=None,
    outputs: Sequence[str] = (),
) -> tuple[list[Stage], BatchSource]:
    """What a recipe changes to train with mined remixes: every stage's objective wrapped in
    a :class:`SemiSupervisedObjective`, and remix batches interleaved at `config.ratio`.

    Remix examples use `data.pools` for s_i, `data.clips` for length and rate, `data.seed`
    and `data.batch_size`. `prompts` are a conditional model's prompt names (checked here),
    `outputs` an unconditional model's output names (assignment "named", checked here).
    Returns the inputs unchanged when `config` is not enabled.
    """
    if not config.enabled:
        return list(stages), batches
    if pools is None and not data.pools.source:
        raise ValueError("semisup needs labeled pools for s_i: set data.pools.source")
    segments = read_mined(
        config.manifest, classes=config.classes, min_confidence=config.min_confidence
    )
    classes = sorted({s.absent for s in segments})
    backgrounds = background_prompts(config, classes)
    if conditional:
        missing = sorted((set(classes) | set(backgrounds.values())) - set(prompts))
        if missing:
            raise ValueError(
                f"remixing needs prompts {missing} that the model lacks (model prompts: "
                f"{list(prompts)}); add them to model.prompts, or set semisup.classes / "
                "semisup.background_prompt"
            )
    if not conditional and config.assignment == Assignment.named:
        missing = sorted(set(classes) - set(outputs))
        if missing:
            raise ValueError(
                f"semisup.assignment=named scores the output named after each mined class, but "
                f"classes {missing} name no output (outputs: {list(outputs) or 'unnamed'}); "
                "set semisup.classes, or assignment single/group"
            )
    pools = pools if pools is not None else build_corpus_index(data.pools)
    dataset = RemixDataset(
        segments,
        pools,
        data.clips,
        gain_db=config.gain_db,
        background_prompt=backgrounds,
        seed=data.seed,
    )
    loader, sampler = build_remix_loader(
        dataset, data.batch_size, num_workers=data.num_workers, rank=rank, world_size=world_size
    )
    remix = RemixObjective(config, conditional, outputs)
    wrapped = [Stage(s.name, SemiSupervisedObjective(s.objective, remix), s.steps) for s in stages]
    return wrapped, interleave_batches(batches, positioned_batches(loader, sampler), config.ratio)


# ------------------------------------------------------------------------------------------
# Training the presence classifier


@dataclass
class PresenceObjectiveConfig:
    threshold_db: float = -30.0  # a source is present in a window above its reference + this
    reference: str = "peak"  # "peak" (its loudest window), "rms" (its mean power), "absolute"
    # With this probability each reference sounds only over a random span (the rest of the
    # clip silent, with short fades), so that training clips contain onsets and offsets as
    # in-the-wild recordings do; labeled pool clips are mostly active throughout.
    gate_prob: float = 0.5
    min_active: float = 0.2  # shortest gated span, as a fraction of the clip
    fade_seconds: float = 0.02
    positive_weight: float = 1.0  # BCE weight of "present" targets
    # A noise floor of no class at this level (dB, drawn per example) relative to the mixture,
    # with a random spectral tilt: recordings are never digitally silent where a class is
    # absent, and a classifier that only saw exact zeros there takes any floor for a class.
    # None: off.
    noise_floor_db: list[float] | None = field(default_factory=lambda: [-60.0, -25.0])
    seed: int = 0

    def __post_init__(self) -> None:
        if self.reference not in REFERENCES:
            raise ValueError(f"objective.reference must be one of {REFERENCES}")
        if not 0.0 <= self.gate_prob <= 1.0 or not 0.0 < self.min_active <= 1.0:
            raise ValueError("objective.gate_prob must be in [0, 1], min_active in (0, 1]")
        floor = self.noise_floor_db
        if floor is not None and (len(floor) != 2 or floor[0] > floor[1]):
            raise ValueError(f"objective.noise_floor_db must be [low, high], got {floor}")


def activity_gates(
    shape: tuple[int, int, int],
    prob: float,
    min_active: float,
    fade: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Gains in [0, 1] of shape (B, S, T): with probability `prob` a source is active only on
    a random span of at least `min_active`·T samples (linear fades of `fade` samples inside
    the span), else everywhere (gain 1)."""
    batch, sources, length = shape
    gated = torch.rand(batch, sources, generator=generator) < prob
    span = (
        min_active + (1 - min_active) * torch.rand(batch, sources, generator=generator)
    ) * length
    start = torch.rand(batch, sources, generator=generator) * (length - span)
    start, end = start.to(device)[..., None], (start + span).to(device)[..., None]
    t = torch.arange(length, device=device, dtype=torch.float32)
    ramp = torch.minimum(t - start, end - t) / max(1, fade)
    gate = ramp.clamp(0.0, 1.0)
    return torch.where(gated.to(device)[..., None], gate, torch.ones_like(gate))


def noise_floor(mixture: Tensor, level_db: Sequence[float], generator: torch.Generator) -> Tensor:
    """Noise for each example of `mixture` (B, T) at a level drawn from `level_db` relative to
    its power, white filtered by a one-pole low-pass of random pole in [0, 0.95) (from white
    to a strongly tilted hum-like floor). Silent mixtures get none."""
    batch, length = mixture.shape
    white = torch.randn(batch, length, generator=generator)
    pole = 0.95 * torch.rand(batch, 1, generator=generator)
    freqs = torch.fft.rfftfreq(length)  # cycles per sample
    response = 1 / (1 - pole * torch.exp(-2j * torch.pi * freqs))  # (B, F)
    noise = torch.fft.irfft(torch.fft.rfft(white) * response, n=length).to(mixture.device)
    low, high = level_db
    level = low + (high - low) * torch.rand(batch, 1, generator=generator).to(mixture.device)
    power = mixture.pow(2).mean(-1, keepdim=True)
    scale = torch.sqrt(power * 10 ** (level / 10) / noise.pow(2).mean(-1, keepdim=True))
    return noise * scale


class PresenceObjective(Objective):
    """Multi-label BCE on per-window class presence, targets from each reference's energy.

    Batch: dynamic mixtures {"references" (B, S, T), "prompts" (B lists of S class names)}.
    The references are gated (:func:`activity_gates`, seeded by the step and micro-batch),
    the mixture is rebuilt as their sum plus a noise floor (:func:`noise_floor`, no class),
    and the model maps it to logits (B, W, C).
    """

    def __init__(self, config: PresenceObjectiveConfig, model_config) -> None:
        super().__init__()
        self.config, self.model_config = config, model_config

    def targets(self, references: Tensor, prompts: Sequence[Sequence[str]]) -> Tensor:
        """(B, S, T) references → (B, W, C) presence targets in {0, 1}."""
        m, c = self.model_config, self.config
        presence = presence_targets(references, m.window, m.window_hop, c.threshold_db, c.reference)
        return class_presence(presence, prompts, m.classes)

    def prepare(self, batch: Batch, step: int, micro: int = 0) -> tuple[Tensor, Tensor]:
        """The gated mixture (B, T) and its targets (B, W, C)."""
        c, references = self.config, batch["references"].float()
        generator = keyed_generator(c.seed, step, micro)
        fade = round(c.fade_seconds * self.model_config.sample_rate)
        gates = activity_gates(
            tuple(references.shape), c.gate_prob, c.min_active, fade, generator, references.device
        )
        references = references * gates
        mixture = references.sum(1)
        if c.noise_floor_db is not None:
            mixture = mixture + noise_floor(mixture, c.noise_floor_db, generator)
        return mixture, self.targets(references, batch["prompts"])

    def forward(
        self, model: nn.Module, batch: Batch, step: int, micro: int = 0
    ) -> dict[str, Tensor]:
        mixture, targets = self.prepare(batch, step, micro)
        logits = model(mixture).float()
        weight = torch.tensor(self.config.positive_weight, device=logits.device)
        loss = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=weight)
        with torch.no_grad():
            accuracy = ((logits > 0).float() == targets).float().mean()
        return {"loss": loss, "accuracy": accuracy, "present": targets.mean()}
