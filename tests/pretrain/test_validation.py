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
