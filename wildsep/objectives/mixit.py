"""MixIT pre-training objective: separate a mixture of two mixtures, remix, compare."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor, nn

from losses import covariance_loss, mixit, semantic_loss, sparsity_l1_l2, sparsity_lp
from wildsep.engine import Objective


class MixITMethod(str, Enum):
    exact = "exact"
    efficient = "efficient"


class SparsityKind(str, Enum):
    l1_l2 = "l1_l2"
    lp = "lp"


class SemanticPooling(str, Enum):
    max = "max"
    prob_or = "prob_or"
    sum = "sum"


class SemanticTargets(str, Enum):
    soft = "soft"  # the classifier's probabilities on each input mixture
    hard = "hard"  # those probabilities thresholded at 0.5


@dataclass
class MixITObjectiveConfig:
    method: MixITMethod = MixITMethod.exact
    snr_max: float = 30.0
    sparsity_weight: float = 0.0
    sparsity: SparsityKind = SparsityKind.l1_l2
    sparsity_p: float = 0.5  # exponent of the lp variant
    # Schedule of the sparsity weight (steps of the run): 0 before `sparsity_start`, then a
    # linear ramp to `sparsity_weight` over `sparsity_ramp` steps — MixIT finds sources first.
    sparsity_start: int = 0
    sparsity_ramp: int = 0
    covariance_weight: float = 0.0
    covariance_center: bool = True  # remove each output's mean first (covariance, not raw ⟨·,·⟩)
    covariance_square: bool = False  # penalise C_ij² instead of |C_ij|
    # An output counts as active when its energy is above this level relative to the MoM's
    # (dB); logged as the number of active outputs, to watch over-separation.
    active_threshold_db: float = -20.0
    # Semantic MixIT (Wisdom et al. 2021): a frozen sound-event classifier (an exported
    # PresenceClassifier, trained by pretrain/presence.py on labeled pools) labels each input
    # mixture (weak multi-label targets) and each output; the outputs MixIT assigned to a
    # mixture must together predict its labels (`losses.semantic_loss`).
    semantic_weight: float = 0.0
    semantic_classifier: str | None = None
    semantic_pooling: SemanticPooling = SemanticPooling.prob_or
    semantic_targets: SemanticTargets = SemanticTargets.soft
    # Outputs quieter than this relative to the MoM (dB) predict no class: a near-silent
    # output carries no class evidence (the classifier normalises its input's level).
    semantic_active_db: float = -30.0

    def __post_init__(self) -> None:
        if self.sparsity_start < 0 or self.sparsity_ramp < 0:
            raise ValueError("mixit.sparsity_start and sparsity_ramp must be >= 0")
        if self.semantic_weight > 0 and not self.semantic_classifier:
            raise ValueError(
                "mixit.semantic_weight > 0 needs mixit.semantic_classifier: an exported "
                "classifier (pretrain/presence.py, e.g. configs/demo_classifier.yaml)"
            )

    def sparsity_at(self, step: int) -> float:
        """The sparsity weight at optimizer step `step` of the run."""
        if step < self.sparsity_start:
            return 0.0
        if self.sparsity_ramp == 0:
            return self.sparsity_weight
        return self.sparsity_weight * min(1.0, (step - self.sparsity_start) / self.sparsity_ramp)


def count_active_mask(outputs: Tensor, mixture: Tensor, threshold_db: float) -> Tensor:
    """(B, M) bool: outputs whose energy is above `threshold_db` relative to the mixture's
    (energies summed over channels)."""
    level = mixture.float().flatten(1).pow(2).sum(-1, keepdim=True) * 10 ** (threshold_db / 10)
    return outputs.float().flatten(2).pow(2).sum(-1) > level


def count_active(outputs: Tensor, mixture: Tensor, threshold_db: float) -> Tensor:
    """Number of outputs above `threshold_db` relative to the mixture energy:
    (B, M, [C,] T) → (B,), energies summed over channels."""
    return count_active_mask(outputs, mixture, threshold_db).sum(-1).float()


def clip_logits(classifier: nn.Module, audio: Tensor) -> Tensor:
    """Clip-level class logits of a mono window classifier: (K, [C,] T) → (K, classes), the
    maximum over its windows; multichannel audio is down-mixed first."""
    return classifier(audio.mean(1) if audio.dim() == 3 else audio).amax(1)


class MixITObjective(Objective):
    """MixIT with optional sparsity, covariance and semantic terms on the MoM outputs.

    Batch: "mixture" (B, T), the mixture of mixtures; "references" (B, N, T), its N mixtures.
    The model maps (B, T) → (B, M, T).
    """

    def __init__(self, config: MixITObjectiveConfig) -> None:
        super().__init__()
        self.config = config
        self.classifier: nn.Module | None = None
        if config.semantic_weight > 0:
            self.classifier = load_classifier(config.semantic_classifier)

    def train(self, mode: bool = True) -> MixITObjective:
        super().train(mode)
        if self.classifier is not None:
            self.classifier.eval()  # frozen: always in inference mode
        return self

    def semantic(self, outputs: Tensor, batch: dict[str, Tensor], mixing: Tensor) -> Tensor:
        """(B,) semantic loss: weak labels of each input mixture against the pooled class
        predictions of the outputs MixIT assigned to it."""
        c, classifier = self.config, self.classifier
        assert classifier is not None
        references, mixture = batch["references"], batch["mixture"]
        (batch_size, count), outputs_per_example = references.shape[:2], outputs.shape[1]
        with torch.no_grad():
            probs = torch.sigmoid(clip_logits(classifier, references.flatten(0, 1)).float())
            probs = probs.view(batch_size, count, -1)
            if c.semantic_targets == SemanticTargets.hard:
                probs = (probs > 0.5).float()
            silent = references.float().flatten(2).pow(2).sum(-1) == 0  # (B, N)
            labels = probs.masked_fill(silent.unsqueeze(-1), 0.0)
            active = count_active_mask(outputs, mixture, c.semantic_active_db)  # (B, M)
        logits = clip_logits(classifier, outputs.flatten(0, 1)).float()
        logits = logits.view(batch_size, outputs_per_example, -1)
        logits = torch.where(active.unsqueeze(-1), logits, torch.full_like(logits, -30.0))
        return semantic_loss(logits, mixing, labels, pooling=c.semantic_pooling.value)

    def forward(
        self, model: nn.Module, batch: dict[str, Tensor], step: int, micro: int = 0
    ) -> dict[str, Tensor]:
        c = self.config
        outputs = model(batch["mixture"])
        result = mixit(outputs, batch["references"], method=c.method.value, snr_max=c.snr_max)
        terms = {"mixit": result.loss.mean()}
        loss = terms["mixit"]
        if c.sparsity_weight > 0:
            sparse = (
                sparsity_l1_l2(outputs)
                if c.sparsity == SparsityKind.l1_l2
                else (sparsity_lp(outputs, p=c.sparsity_p))
            )
            terms["sparsity"] = sparse.mean()
            terms["sparsity_weight"] = torch.tensor(c.sparsity_at(step))
            loss = loss + c.sparsity_at(step) * terms["sparsity"]
        if c.covariance_weight > 0:
            terms["covariance"] = covariance_loss(
                outputs, center=c.covariance_center, square=c.covariance_square
            ).mean()
            loss = loss + c.covariance_weight * terms["covariance"]
        if self.classifier is not None:
            terms["semantic"] = self.semantic(outputs, batch, result.mixing).mean()
            loss = loss + c.semantic_weight * terms["semantic"]
        with torch.no_grad():
            terms["active_outputs"] = count_active(
                outputs, batch["mixture"], c.active_threshold_db
            ).mean()
        terms["loss"] = loss
        return terms


def load_classifier(path: str | None) -> nn.Module:
    """The frozen sound-event classifier of semantic MixIT, from an exported model folder."""
    from wildsep.models import PresenceClassifier, load_pretrained
    from wildsep.models.pretrained import resolve_model_dir

    if not path:
        raise ValueError("semantic MixIT needs mixit.semantic_classifier")
    model = load_pretrained(resolve_model_dir(path))
    if not isinstance(model, PresenceClassifier):
        raise ValueError(
            f"mixit.semantic_classifier={path} holds a {type(model).__name__}, not a "
            "PresenceClassifier (train one with pretrain/presence.py)"
        )
    return model.requires_grad_(False).eval()
