"""The MixIT objective's terms against their formulas, written out per example."""

import itertools

import pytest
import torch

from wildsep.objectives import MixITObjective, MixITObjectiveConfig


class FixedOutputs(torch.nn.Module):
    def __init__(self, outputs):
        super().__init__()
        self.outputs = torch.nn.Parameter(outputs.clone())

    def forward(self, mixture):
        return self.outputs


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
