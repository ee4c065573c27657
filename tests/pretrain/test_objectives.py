"""The MixIT objective's terms against their formulas, written out per example."""

import itertools
from pathlib import Path

import pytest
import torch

from tests.tiny import FixedOutputs
from wildsep.objectives import MixITObjective, MixITObjectiveConfig


def negative_snr(est, ref, tau=1e-3):
    error = (ref - est).pow(2).sum() + tau * ref.pow(2).sum() + 1e-8
    return 10 * torch.log10(error) - 10 * torch.log10(ref.pow(2).sum() + 1e-8)


def mixit_by_enumeration(outputs, references):
    """min over every assignment of the M outputs to the 2 mixtures, one example at a time."""
    values = []
    for est, refs in zip(outputs, references, strict=True):
        best = min(
            sum(
                negative_snr(sum(est[m] for m in range(len(est)) if a[m] == n) + 0 * est[0], r)
                for n, r in enumerate(refs)
            )
            / len(refs)
            for a in itertools.product(range(len(refs)), repeat=len(est))
        )
        values.append(best)
    return torch.stack(values).mean()


def correlation_penalty(est, center, square):
    values = []
    for x in est:
        x = x - x.mean(-1, keepdim=True) if center else x
        x = x / (x.norm(dim=-1, keepdim=True) + 1e-8)
        corr = x @ x.T
        off = corr[~torch.eye(len(x), dtype=torch.bool)]
        values.append((off.square() if square else off.abs()).mean())
    return torch.stack(values).mean()


def train(model, objective, batch, steps: int) -> None:
    """`steps` AdamW steps (lr 3e-3) of `objective` on one fixed batch."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(steps):
        optimizer.zero_grad()
        objective(model, batch, step)["loss"].backward()
        optimizer.step()


@pytest.mark.parametrize("center,square", [(True, False), (False, True)])
def test_mixit_objective_terms_follow_the_formulas_and_the_config(center, square):
    torch.manual_seed(0)
    references = torch.randn(3, 2, 200, dtype=torch.float64)
    references *= torch.tensor([1.0, 0.01, 4.0], dtype=torch.float64)[:, None, None]
    references[2, 1] = 0  # a silent reference mixture
    outputs = torch.randn(3, 3, 200, dtype=torch.float64) * references.std((1, 2))[:, None, None]
    outputs[0, 2] = 0.5  # an output with a large DC offset: centring matters
    config = MixITObjectiveConfig(
        sparsity_weight=0.3,
        covariance_weight=0.2,
        covariance_center=center,
        covariance_square=square,
    )
    batch = {"mixture": references.sum(1), "references": references}
    terms = MixITObjective(config)(FixedOutputs(outputs), batch, step=0)

    rms = outputs.pow(2).mean(-1).sqrt()
    sparsity = (rms.sum(-1) / rms.pow(2).sum(-1).sqrt()).mean()
    covariance = correlation_penalty(outputs, center, square)
    mixit = mixit_by_enumeration(outputs, references)
    torch.testing.assert_close(terms["mixit"], mixit, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(terms["sparsity"].double(), sparsity, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(terms["covariance"].double(), covariance, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        terms["loss"].double(), mixit + 0.3 * sparsity + 0.2 * covariance, rtol=1e-5, atol=1e-5
    )


def test_sparsity_weight_schedule_is_zero_then_a_linear_ramp():
    config = MixITObjectiveConfig(sparsity_weight=2.0, sparsity_start=100, sparsity_ramp=50)
    assert [config.sparsity_at(s) for s in (0, 99, 100, 125, 150, 10_000)] == [
        0.0,
        0.0,
        0.0,
        1.0,
        2.0,
        2.0,
    ]
    assert MixITObjectiveConfig(sparsity_weight=0.7).sparsity_at(0) == 0.7


def tiny_classifier(tmp_path, classes=("speech", "sfx", "music")):
    from wildsep.models import PresenceClassifier, PresenceConfig

    torch.manual_seed(0)
    config = PresenceConfig(
        classes=list(classes), n_mels=16, channels=8, conv_blocks=2, dim=16, context_blocks=1
    )
    model = PresenceClassifier(config)
    model.save_pretrained(tmp_path / "classifier")
    return model, tmp_path / "classifier"


def test_semantic_term_matches_the_formula_and_trains_only_assigned_active_outputs(tmp_path):
    """Weak labels: the classifier's probabilities on each input mixture (0 for a silent one);
    predictions: max-over-windows logits of each output, pooled by probabilistic OR over the
    outputs MixIT assigned to that mixture; a near-silent output predicts nothing and gets no
    gradient from the semantic term."""
    classifier, path = tiny_classifier(tmp_path)
    torch.manual_seed(1)
    references = torch.randn(3, 2, 8000) * torch.tensor([1.0, 0.1, 3.0])[:, None, None]
    references[2, 1] = 0  # a silent reference mixture
    outputs = torch.randn(3, 4, 8000) * 0.5 * references.std((1, 2))[:, None, None]
    outputs[1, 3] = 1e-6 * torch.randn(8000)  # near silent
    config = MixITObjectiveConfig(
        semantic_weight=1.0, semantic_classifier=str(path), semantic_active_db=-30.0
    )
    objective = MixITObjective(config)
    model = FixedOutputs(outputs)
    batch = {"mixture": references.sum(1), "references": references}
    terms = objective(model, batch, step=0)
    mixing = mixit_assignments(outputs, references)

    expected = []
    with torch.no_grad():
        for b in range(3):
            total = 0.0
            for n in range(2):
                ref = references[b, n]
                label = torch.zeros(3)
                if ref.abs().sum() > 0:
                    label = torch.sigmoid(classifier(ref[None]).amax(1)[0])
                log_none = torch.zeros(3)
                for m in range(4):
                    loud = outputs[b, m].pow(2).sum() > references[b].sum(0).pow(2).sum() * 1e-3
                    if mixing[b, n, m] and loud:
                        z = classifier(outputs[b, m][None].float()).amax(1)[0]
                        log_none = log_none - torch.nn.functional.softplus(z)
                    elif mixing[b, n, m]:
                        log_none = log_none - torch.nn.functional.softplus(torch.tensor(-30.0))
                # P(present) = 1 − Π(1 − σ(z)) = 1 − exp(log_none), in float64
                log_none = log_none.double().clamp(max=-1e-6)
                log_present = torch.log(-torch.expm1(log_none))
                total += -(label * log_present + (1 - label) * log_none).sum()
            expected.append(total / 6)
    assert terms["semantic"].item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-4)

    model.zero_grad()
    objective.semantic(model.outputs, batch, mixing).sum().backward()
    grad = model.outputs.grad
    assert grad[1, 3].abs().sum() == 0  # the near-silent output
    assert all(grad[b, m].abs().sum() > 0 for b in range(3) for m in range(4) if (b, m) != (1, 3))
    assert not any(p.requires_grad for p in objective.classifier.parameters())  # frozen


def mixit_assignments(outputs, references):
    from losses import mixit

    return mixit(outputs, references).mixing


def test_semantic_mixit_needs_a_classifier_at_the_clip_rate(tmp_path):
    from pretrain.config import PretrainConfig
    from pretrain.run import main
    from wildsep.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="semantic_classifier"):
        load_config(PretrainConfig, None, ["stages.0.mixit.semantic_weight=1.0"])
    _, path = tiny_classifier(tmp_path)  # 8 kHz
    with pytest.raises(ConfigError, match=r"runs at 8000 Hz but data\.clips\.sample_rate=16000"):
        main(
            [
                str(Path(__file__).resolve().parents[2] / "configs" / "demo_pretrain.yaml"),
                "data.corpus.source=/nowhere",
                f"run_dir={tmp_path / 'run'}",
                "stages.0.mixit.semantic_weight=1.0",
                f"stages.0.mixit.semantic_classifier={path}",
                "data.clips.sample_rate=16000",
            ]
        )


@pytest.mark.slow
def test_sparsity_leaves_one_active_output_on_one_source_inputs_after_a_short_overfit():
    """MoMs whose second mixture is silent (data.mixit.silent_prob) and whose first holds one
    source, at three levels: plain MixIT keeps all 4 outputs active (it only constrains their
    sum); with the sparsity loss exactly one output stays active (FUSS rule)."""
    from tests.tiny import TINY_SEPARATOR
    from wildsep.metrics import separation_counts
    from wildsep.models import from_preset

    t = torch.arange(4000) / 8000
    sources = torch.stack(
        [
            0.3 * torch.sin(2 * torch.pi * 440 * t),
            0.05 * torch.sign(torch.sin(2 * torch.pi * 97 * t)) * (t < 0.3),
            1.0 * torch.sin(2 * torch.pi * 1000 * t),
        ]
    )
    references = torch.stack([sources, torch.zeros_like(sources)], 1)
    batch = {"mixture": references.sum(1), "references": references}

    def active_after_overfit(weight: float) -> list[int]:
        torch.manual_seed(0)
        model = from_preset("backbone-medium", **TINY_SEPARATOR, n_outputs=4)
        objective = MixITObjective(MixITObjectiveConfig(sparsity_weight=weight))
        train(model, objective, batch, steps=200)
        with torch.no_grad():
            outputs = model(batch["mixture"])
        return [separation_counts(outputs[b], sources[b : b + 1])[0] for b in range(3)]

    assert active_after_overfit(0.0) == [4, 4, 4]
    assert active_after_overfit(3.0) == [1, 1, 1]


def test_covariance_term_decorrelates_outputs_that_mixit_alone_leaves_as_copies():
    """Outputs start as near-copies of the MoM / 4 (three examples at different levels, one
    with a silent stretch). MixIT only constrains the sum of each mixture's outputs, so alone it
    keeps copies inside a group; with the covariance term the outputs end decorrelated while the
    mixtures are still reconstructed."""
    t = torch.arange(2000) / 8000
    tone, buzz = torch.sin(2 * torch.pi * 440 * t), torch.sign(torch.sin(2 * torch.pi * 97 * t))
    chirp = torch.sin(2 * torch.pi * (200 + 2000 * t) * t) * (t > 0.1)  # silent at the start
    gains = torch.tensor([1.0, 0.1, 3.0])[:, None]
    references = torch.stack([tone * gains, (buzz * 0.3 + chirp) * gains], 1)  # (3, 2, T)
    batch = {"mixture": references.sum(1), "references": references}
    torch.manual_seed(0)
    start = batch["mixture"][:, None].repeat(1, 4, 1) / 4
    start = start + 0.01 * gains[:, :, None] * torch.randn(3, 4, 2000)

    def overfit(weight: float) -> tuple[float, float]:
        model = FixedOutputs(start)
        objective = MixITObjective(MixITObjectiveConfig(covariance_weight=weight))
        train(model, objective, batch, steps=200)
        terms = objective(model, batch, 200)
        correlation = correlation_penalty(model.outputs.detach(), center=True, square=False)
        return float(correlation), float(terms["mixit"])

    copies, mixit_alone = overfit(0.0)
    decorrelated, mixit_with = overfit(10.0)
    assert copies > 0.35
    assert decorrelated < 0.6 * copies
    assert mixit_with < -20.0 and mixit_alone < -20.0
