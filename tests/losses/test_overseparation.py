import math

import pytest
import torch

from losses import covariance_loss, sparsity_l1_l2, sparsity_lp


def reference_l1_l2(est):
    rms = est.double().pow(2).mean(-1).sqrt()
    return rms.sum(-1) / rms.pow(2).sum(-1).sqrt()


def test_sparsity_matches_the_rms_ratio():
    est = torch.randn(4, 6, 300) * torch.rand(4, 6, 1)
    torch.testing.assert_close(
        sparsity_l1_l2(est).double(), reference_l1_l2(est), rtol=1e-5, atol=0
    )


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("m", [2, 4, 8, 16])
def test_sparsity_is_one_for_one_active_output_and_sqrt_m_for_m_equal_ones(scale, m):
    one = torch.zeros(1, m, 400)
    one[0, 1] = scale * torch.randn(400)
    assert sparsity_l1_l2(one).item() == pytest.approx(1.0, abs=1e-4)
    equal = scale * torch.randn(1, 1, 400).expand(1, m, 400)
    assert sparsity_l1_l2(equal).item() == pytest.approx(math.sqrt(m), rel=1e-5)


def test_sparsity_stays_in_its_range_when_an_example_is_all_silent():
    """A batch with a silent example (a silent MoM) among loud and quiet ones: the silent one
    scores the top of the range (M equally loud outputs), the others their own ratio."""
    est = torch.randn(3, 4, 300) * torch.tensor([1.0, 0.0, 1e-4])[:, None, None]
    est[0, 1:] *= 0.01
    l1_l2, lp = sparsity_l1_l2(est), sparsity_lp(est, p=0.5)
    assert l1_l2[1].item() == pytest.approx(2.0, rel=1e-5)  # √4
    assert lp[1].item() == pytest.approx(4 ** (1 - 0.25), rel=1e-5)
    torch.testing.assert_close(
        l1_l2[[0, 2]].double(), reference_l1_l2(est[[0, 2]]), rtol=1e-4, atol=0
    )
    assert ((l1_l2 >= 1 - 1e-4) & (l1_l2 <= 2 + 1e-4)).all()


def test_lp_variant_generalises_l1_l2_and_is_scale_invariant():
    est = torch.randn(3, 5, 200) * torch.rand(3, 5, 1)
    torch.testing.assert_close(sparsity_lp(est, p=1.0), sparsity_l1_l2(est))
    torch.testing.assert_close(
        sparsity_lp(40 * est, p=0.5), sparsity_lp(est, p=0.5), rtol=1e-5, atol=0
    )
    equal = torch.randn(1, 1, 100).expand(1, 4, 100)
    assert sparsity_lp(equal, p=0.5).item() == pytest.approx(4 ** (1 - 0.25), rel=1e-5)
    with pytest.raises(ValueError, match="0 < p < 2"):
        sparsity_lp(est, p=2.0)


def test_covariance_is_zero_for_orthogonal_outputs_and_one_for_copies():
    t = torch.arange(800) / 800
    orthogonal = torch.stack([torch.sin(2 * math.pi * k * t) for k in (1, 2, 3, 5)])[None]
    assert covariance_loss(orthogonal).item() == pytest.approx(0.0, abs=1e-5)
    assert covariance_loss(orthogonal, square=True).item() == pytest.approx(0.0, abs=1e-8)
    copies = torch.randn(1, 1, 800) * torch.tensor([1.0, -2.0, 0.5]).view(1, 3, 1)
    assert covariance_loss(copies).item() == pytest.approx(1.0, abs=1e-5)


def test_covariance_matches_the_formula():
    est = torch.randn(2, 4, 300) + 0.2
    for center in (True, False):
        x = est.double() - (est.double().mean(-1, keepdim=True) if center else 0)
        x = x / x.norm(dim=-1, keepdim=True)
        corr = x @ x.transpose(1, 2)
        off = corr[:, ~torch.eye(4, dtype=torch.bool)]
        torch.testing.assert_close(
            covariance_loss(est, center=center).double(), off.abs().mean(-1), rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize(
    "fn",
    [sparsity_l1_l2, lambda e: sparsity_lp(e, p=0.5), covariance_loss],
    ids=["l1l2", "lp", "cov"],
)
def test_finite_gradients_for_all_zero_outputs(fn):
    est = torch.zeros(2, 4, 100, requires_grad=True)
    value = fn(est)
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(est.grad).all()
