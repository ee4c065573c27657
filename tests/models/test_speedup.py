"""The faster blocks compute what the blocks they replaced computed (kept in
benchmarks/baseline.py), gradients included, and the checkpoint layout is unchanged."""

import hashlib
from collections.abc import Callable

import pytest
import torch

from benchmarks.baseline import as_baseline
from wildsep.models import (
    BandMaskDecoder,
    ConvSwiGLU,
    MultiHeadSelfAttention,
    PretrainedModel,
    RMSGroupNorm,
    band_widths,
    from_preset,
)


def levels_and_silence(*shape: int) -> torch.Tensor:
    """A batch of ≥ 3 sequences at levels 1e-3, 1 and 30, the last one silent for a stretch."""
    x = torch.randn(*shape)
    x = x * torch.tensor([1e-3, 1.0, 30.0]).repeat(shape[0] // 3 + 1)[: shape[0]].reshape(
        -1, *[1] * (len(shape) - 1)
    )
    x[-1, : shape[1] // 2] = 0.0
    return x


def assert_same_function(
    module: torch.nn.Module, x: torch.Tensor, tol: float = 1e-5, grad_tol: float = 1e-5
) -> None:
    """Outputs, input gradients and parameter gradients of `module` and its baseline agree
    (absolute tolerance `tol`, `grad_tol` for gradients, times the largest magnitude of each)."""
    baseline = as_baseline(module)
    changed = {type(m) for m in baseline.modules()} - {type(m) for m in module.modules()}
    assert changed, "the baseline must run other code than the module"
    results = []
    for m in (module, baseline):
        xi = x.clone().requires_grad_()
        y = m(xi)
        weights = torch.linspace(-1, 1, y.numel()).reshape(y.shape)
        (y * weights).sum().backward()
        grads = {name: p.grad for name, p in m.named_parameters()}
        results.append((y.detach(), xi.grad, grads))
    (y, gx, grads), (y0, gx0, grads0) = results
    torch.testing.assert_close(y, y0, atol=tol * y0.abs().max(), rtol=1e-4)
    torch.testing.assert_close(gx, gx0, atol=grad_tol * gx0.abs().max(), rtol=1e-4)
    assert grads.keys() == grads0.keys()
    for name, grad in grads.items():
        ref = grads0[name]
        close = torch.isclose(grad, ref, atol=float(grad_tol * ref.abs().max()), rtol=1e-4)
        assert close.all(), f"{name}: {(grad - ref).abs().max()} off (scale {ref.abs().max()})"


def test_rms_group_norm_matches_baseline() -> None:
    torch.manual_seed(0)
    norm = RMSGroupNorm(16, 4)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = levels_and_silence(3, 7, 16)
    x[-1, :3] = 1e-9  # near-silent: the baseline's gradient is NaN at exact silence (below)
    assert_same_function(norm, x)


def test_rms_group_norm_gradient_is_finite_on_silent_groups() -> None:
    # y = x / (rms(x) + eps) is x / eps near silence, so dy/dx = 1/eps there; the baseline's
    # sqrt(mean(x²)) has an infinite derivative at 0 and gave NaN instead.
    x = levels_and_silence(3, 4, 16).requires_grad_()
    y = RMSGroupNorm(16, 4, eps=1e-3)(x)
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and (y[-1, :2] == 0).all()
    torch.testing.assert_close(x.grad[-1, :2], torch.full((2, 16), 1e3))


@pytest.mark.parametrize(("kernel", "length"), [(3, 9), (4, 1), (8, 5)])
def test_conv_swiglu_matches_baseline(kernel: int, length: int) -> None:
    torch.manual_seed(0)
    assert_same_function(ConvSwiGLU(16, 24, kernel), levels_and_silence(4, length, 16))


@pytest.mark.parametrize("length", [1, 11])
def test_attention_with_rotary_embedding_matches_baseline(length: int) -> None:
    torch.manual_seed(0)
    assert_same_function(MultiHeadSelfAttention(16, 32, 4), levels_and_silence(3, length, 16))


def test_band_mask_decoder_matches_baseline() -> None:
    torch.manual_seed(0)
    widths = band_widths(16000, 256)  # several runs of equal-width bands
    decoder = BandMaskDecoder(widths, dim=8, n_outputs=3, hidden=12)
    assert_same_function(decoder, levels_and_silence(3, 5, len(widths), 8))


class WithPrompts(torch.nn.Module):
    """A TUSS with fixed prompts, as a one-argument module."""

    def __init__(self, model: torch.nn.Module, prompts: list[str]) -> None:
        super().__init__()
        self.model, self.prompts = model, prompts

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return self.model(mix, self.prompts)


@pytest.mark.parametrize("name", ["tuss-medium", "backbone-medium", "locoformer-m"])
def test_whole_models_match_baseline(small: Callable[..., PretrainedModel], name: str) -> None:
    model = small(name)
    if name.startswith("tuss"):
        model = WithPrompts(model, ["speech", "sfx", "speech"])
    # Several blocks deep and back through the iSTFT/STFT, float32 rounding in the gradients of
    # the first layers adds up to ~1e-4 of their largest value (the blocks alone agree to 1e-5).
    assert_same_function(model, levels_and_silence(3, 1201), grad_tol=1e-3)


# sha256 of the sorted "name:shape:dtype" lines of each preset's state dict, computed with the
# code at commit 9e13b28 (before the speed-up): checkpoints saved then must load now.
STATE_DICT_LAYOUT = {
    "tuss-medium": "0565453d585469c0",
    "backbone-medium": "ae056221820a3dc6",
    "locoformer-m": "7ad7712b5298f59c",
}


@pytest.mark.parametrize("name", sorted(STATE_DICT_LAYOUT))
def test_checkpoint_layout_is_unchanged(name: str) -> None:
    with torch.device("meta"):
        state = from_preset(name).state_dict()
    lines = "\n".join(f"{k}:{tuple(v.shape)}:{v.dtype}" for k, v in sorted(state.items()))
    assert hashlib.sha256(lines.encode()).hexdigest()[:16] == STATE_DICT_LAYOUT[name]
