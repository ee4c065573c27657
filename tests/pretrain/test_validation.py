"""Validation of unconditional models: FUSS MSi, SS, separation rates and active outputs per
number of true sources, against values computed by hand."""

import pytest
import torch

from losses import si_snr
from wildsep.validation import UnconditionalValidation


class Outputs(torch.nn.Module):
    """Returns fixed outputs for each mixture it has been told about."""

    def __init__(self, table):
        super().__init__()
        self.table = table
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, mixture):
        return torch.stack([self.table[float(m.sum())] for m in mixture])


def test_single_source_examples_give_ss_and_multi_source_examples_msi():
    torch.manual_seed(0)
    t = 2000
    a, b, c = torch.randn(3, t)
    quiet = 0.05 * torch.randn(t)
    two = {"mixture": a + b, "references": torch.stack([a, b])}
    one = {"mixture": 2 * c, "references": (2 * c)[None]}
    three = {"mixture": a + b + c, "references": torch.stack([a, b, c])}
    outputs = {
        float(two["mixture"].sum()): torch.stack([a + 0.1 * b, b, quiet, torch.zeros(t)]),
        float(one["mixture"].sum()): torch.stack([1.5 * c, 0.5 * c, torch.zeros(t), quiet]),
        float(three["mixture"].sum()): torch.stack([a, b, c, torch.zeros(t)]),
    }
    metrics = UnconditionalValidation([], [two, one, three])(Outputs(outputs), step=0)

    msi = torch.cat(
        [
            si_snr(torch.stack([a + 0.1 * b, b]), two["references"])
            - si_snr(two["mixture"].expand(2, t), two["references"]),
            si_snr(torch.stack([a, b, c]), three["references"])
            - si_snr(three["mixture"].expand(3, t), three["references"]),
        ]
    ).mean()
    assert metrics["si_snri"] == pytest.approx(msi.item(), abs=1e-3)
    assert metrics["single_source_si_snr"] == pytest.approx(si_snr(1.5 * c, 2 * c).item(), abs=1e-3)
    # FUSS activity: power above 1 % of the weakest reference's. two: a+0.1b, b (quiet is
    # 0.25 % of the power) → 2 of 2, equal; one: 1.5c, 0.5c → 2 of 1, over; three: 3 of 3.
    assert metrics["active_outputs/1_sources"] == 2
    assert metrics["active_outputs/2_sources"] == 2
    assert metrics["active_outputs/3_sources"] == 3
    assert metrics["over_separation"] == pytest.approx(1 / 3)
    assert metrics["equal_separation"] == pytest.approx(2 / 3)


def test_labeled_scores_per_number_of_sources_and_per_class():
    """What GASS reports: SI-SNRi per number of sources and per class; SS per class."""
    torch.manual_seed(1)
    t = 2000
    a, b, c, d = torch.randn(4, t)
    two = {"mixture": a + b, "references": torch.stack([a, b]), "classes": ["speech", "sfx"]}
    three = {
        "mixture": a + c + d,
        "references": torch.stack([a, c, d, torch.zeros(t)]),  # a silent reference, unscored
        "classes": ["speech", "sfx", "sfx", "music"],
    }
    one = {"mixture": 3 * d, "references": (3 * d)[None], "classes": ["music"]}
    outputs = {
        float(two["mixture"].sum()): torch.stack([a + 0.2 * b, b + 0.1 * a, 0 * a, 0 * a]),
        float(three["mixture"].sum()): torch.stack([0 * a, a + 0.3 * d, c, d + 0.5 * c]),
        float(one["mixture"].sum()): torch.stack([2 * d + 0.1 * a, 0 * a, 0 * a, 0 * a]),
    }
    metrics = UnconditionalValidation([], [two, one, three])(Outputs(outputs), step=0)

    def improvement(est, ref, mixture):
        return (si_snr(est, ref) - si_snr(mixture, ref)).item()

    two_i = [improvement(a + 0.2 * b, a, a + b), improvement(b + 0.1 * a, b, a + b)]
    mix3 = three["mixture"]
    three_i = [
        improvement(a + 0.3 * d, a, mix3),
        improvement(c, c, mix3),
        improvement(d + 0.5 * c, d, mix3),
    ]
    assert metrics["si_snri/2_sources"] == pytest.approx(sum(two_i) / 2, abs=1e-3)
    assert metrics["si_snri/3_sources"] == pytest.approx(sum(three_i) / 3, abs=1e-3)
    assert metrics["si_snri/speech"] == pytest.approx((two_i[0] + three_i[0]) / 2, abs=1e-3)
    assert metrics["si_snri/sfx"] == pytest.approx((two_i[1] + sum(three_i[1:])) / 3, abs=1e-3)
    assert "si_snri/music" not in metrics  # music only as a silent reference or a single source
    assert metrics["single_source_si_snr/music"] == pytest.approx(
        si_snr(2 * d + 0.1 * a, 3 * d).item(), abs=1e-3
    )


def test_held_out_dynamic_mixtures_give_the_supervised_loss_which_is_the_loss_without_moms():
    from losses import tuss_loss
    from wildsep.objectives import SupervisedObjective, SupervisedObjectiveConfig

    torch.manual_seed(2)
    t = 1000
    references = torch.randn(3, 2, t) * torch.tensor([0.1, 1.0, 5.0]).view(3, 1, 1)
    mixture = references.sum(1)
    est = torch.randn(3, 4, t)
    outputs = {float(m.sum()): e for m, e in zip(mixture, est, strict=True)}
    batches = [{"mixture": mixture, "references": references}]
    metrics = UnconditionalValidation([], [], mixing_batches=batches, loss_fn=tuss_loss)(
        Outputs(outputs), step=0
    )
    expected = SupervisedObjective(SupervisedObjectiveConfig())(
        lambda m: est, {"mixture": mixture, "references": references}, 0
    )["loss"]
    assert metrics["supervised_loss"] == pytest.approx(expected.item(), abs=1e-5)
    assert metrics["loss"] == metrics["supervised_loss"]
