"""StemsObjective: fixed-order stem losses against a per-example, per-stem loop."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from wildsep.models import Demucs, DemucsConfig
from wildsep.objectives import StemLoss, StemsObjective, StemsObjectiveConfig

B, S, C, T = 3, 4, 2, 500


class Fixed(nn.Module):
    """Returns the given estimates whatever the input (and checks it got the mixture)."""

    def __init__(self, estimates: torch.Tensor, mixture: torch.Tensor) -> None:
        super().__init__()
        self.estimates, self.mixture = estimates, mixture

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        assert torch.equal(mix, self.mixture)
        return self.estimates


def _batch(channels: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """References with per-stem levels and two silent stems, their mixture, noisy estimates."""
    g = torch.Generator().manual_seed(0)
    shape = (B, S, *channels, T)
    levels = torch.tensor([[1.0, 0.2, 0.5, 0.05], [0.3, 1.0, 0.0, 0.7], [0.0, 0.4, 0.9, 0.1]])
    per_stem = (B, S, *[1] * (len(shape) - 2))
    references = torch.randn(shape, generator=g) * levels.view(per_stem)
    noise = 0.1 * torch.rand(B, S, generator=g).view(per_stem)
    estimates = references + noise * torch.randn(shape, generator=g)
    return references.sum(1), references, estimates


def _loop(estimates, references, mixture, loss: StemLoss) -> torch.Tensor:
    """(B, S) losses written out example by example and stem by stem."""
    tau = 10 ** (-30 / 10)
    out = torch.zeros(B, S)
    for b in range(B):
        for s in range(S):
            e, r = estimates[b, s].flatten().double(), references[b, s].flatten().double()
            if loss == StemLoss.l1:
                out[b, s] = (e - r).abs().mean()
            elif loss == StemLoss.l2:
                out[b, s] = ((e - r) ** 2).mean()
            elif r.abs().max() > 0:  # thresholded SNR
                error, power = ((r - e) ** 2).sum(), (r**2).sum()
                out[b, s] = 10 * math.log10(error + tau * power) - 10 * math.log10(power)
            else:  # silent stem: 0.1 · energy of the output relative to the mixture
                m = mixture[b].flatten().double()
                out[b, s] = 0.1 * 10 * math.log10((e**2).sum() + tau * (m**2).sum())
    return out


@pytest.mark.parametrize("loss", list(StemLoss))
@pytest.mark.parametrize("channels", [(C,), ()], ids=["stereo", "mono"])
def test_losses_match_a_per_example_loop(loss: StemLoss, channels: tuple[int, ...]) -> None:
    mixture, references, estimates = _batch(channels)
    objective = StemsObjective(StemsObjectiveConfig(loss=loss))
    terms = objective(Fixed(estimates, mixture), {"mixture": mixture, "references": references}, 0)
    expected = _loop(estimates, references, mixture, loss)
    tol = dict(rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(terms["loss"], expected.mean(), **tol)
    for s, name in enumerate(("drums", "bass", "vocals", "other")):
        torch.testing.assert_close(terms[f"loss_{name}"], expected[:, s].mean(), **tol)


def test_trains_a_stereo_demucs_and_accepts_micro() -> None:
    torch.manual_seed(0)
    model = Demucs(DemucsConfig(channels=4, depth=2))
    mixture, references, _ = _batch((C,))
    objective = StemsObjective(StemsObjectiveConfig(loss="l1"))
    batch = {"mixture": mixture, "references": references}
    terms = objective(model, batch, step=3, micro=1)
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"])
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_shape_and_config_errors() -> None:
    mixture, references, estimates = _batch((C,))
    objective = StemsObjective(StemsObjectiveConfig(stems=("vocals", "accompaniment")))
    with pytest.raises(ValueError, match=r"\(B, 2 stems \['vocals', 'accompaniment'\]"):
        objective(Fixed(estimates, mixture), {"mixture": mixture, "references": references}, 0)
    objective = StemsObjective(StemsObjectiveConfig())
    with pytest.raises(ValueError, match="the model returned"):
        objective(
            Fixed(estimates[:, :, 0], mixture), {"mixture": mixture, "references": references}, 0
        )
    with pytest.raises(ValueError, match="unique"):
        StemsObjectiveConfig(stems=("bass", "bass"))
    with pytest.raises(ValueError):
        StemsObjectiveConfig(loss="l3")
