import pytest
import torch

from losses import mixture_consistency


@pytest.mark.parametrize("weights", ["uniform", "power", "softmax"])
@pytest.mark.parametrize("mixture_shape", [(3, 500), (3, 1, 500)])
def test_projected_outputs_sum_to_the_mixture(weights, mixture_shape):
    est, mixture = torch.randn(3, 4, 500), torch.randn(mixture_shape)
    if weights == "softmax":
        weights = torch.randn(3, 4).softmax(-1)
    out = mixture_consistency(est, mixture, weights)
    torch.testing.assert_close(out.sum(1), mixture.reshape(3, 500), atol=1e-5, rtol=0)


def test_uniform_and_power_weights_match_the_formula():
    est, mixture = torch.randn(2, 3, 100), torch.randn(2, 100)
    residual = mixture - est.sum(1)
    uniform = mixture_consistency(est, mixture)
    torch.testing.assert_close(uniform, est + residual[:, None] / 3)
    power = (est**2).sum(-1)
    w = power / power.sum(1, keepdim=True)
    torch.testing.assert_close(
        mixture_consistency(est, mixture, "power"), est + w[..., None] * residual[:, None]
    )


def test_power_weights_fall_back_to_uniform_for_silent_outputs():
    out = mixture_consistency(torch.zeros(1, 4, 50), torch.ones(1, 50), "power")
    torch.testing.assert_close(out, torch.full((1, 4, 50), 0.25))


def test_time_varying_weights_and_multichannel():
    est, mixture = torch.randn(2, 3, 2, 80), torch.randn(2, 2, 80)
    weights = torch.randn(2, 3, 2, 80).softmax(1)
    out = mixture_consistency(est, mixture, weights)
    torch.testing.assert_close(out.sum(1), mixture, atol=1e-5, rtol=0)


def test_unknown_weights_is_a_clear_error():
    with pytest.raises(ValueError, match="uniform"):
        mixture_consistency(torch.randn(1, 2, 4), torch.randn(1, 4), "loudest")
