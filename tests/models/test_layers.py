"""The pieces of the TF-Locoformer block, each against its defining property."""

import pytest
import torch

from wildsep.models import (
    ConvSwiGLU,
    MultiHeadSelfAttention,
    RMSGroupNorm,
    RotaryEmbedding,
    TFLocoformerBlock,
)


def test_rms_group_norm_scales_each_group_to_unit_rms() -> None:
    torch.manual_seed(0)
    norm = RMSGroupNorm(12, groups=3)
    x = torch.randn(5, 12) * torch.tensor([1.0] * 4 + [10.0] * 4 + [0.1] * 4)
    y = norm(x).view(5, 3, 4)
    torch.testing.assert_close(y.square().mean(-1).sqrt(), torch.ones(5, 3), atol=1e-3, rtol=0)
    # Groups are independent: rescaling one group changes no output.
    x2 = x.clone()
    x2[:, 4:8] *= 7
    torch.testing.assert_close(norm(x2), norm(x), atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(12.0))
    torch.testing.assert_close(norm(x), y.flatten(1) * torch.arange(12.0), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        RMSGroupNorm(10, groups=4)


@pytest.mark.parametrize("kernel", [1, 3, 4, 8])
@pytest.mark.parametrize("length", [1, 2, 7, 33])
def test_conv_swiglu_keeps_length_and_is_local(kernel: int, length: int) -> None:
    torch.manual_seed(0)
    ffn = ConvSwiGLU(6, 10, kernel)
    x = torch.randn(2, length, 6)
    y = ffn(x)
    assert y.shape == x.shape
    # Position i only reaches outputs within K−1 steps: conv then transposed conv.
    x2 = x.clone()
    x2[:, length // 2] += 1
    changed = (ffn(x2) - y).abs().amax((0, 2)) > 0
    reach = (torch.arange(length) - length // 2).abs() <= kernel - 1
    assert not changed[~reach].any()
    assert changed[length // 2]


def test_rotary_scores_depend_only_on_relative_position() -> None:
    torch.manual_seed(0)
    rope = RotaryEmbedding(8)
    q, k = torch.randn(8).expand(1, 1, 10, 8), torch.randn(8).expand(1, 1, 10, 8)
    rq, rk = rope(q), rope(k)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))  # a rotation
    scores = (rq @ rk.mT)[0, 0]
    for offset in range(-9, 10):
        diagonal = torch.diagonal(scores, offset)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal))
    assert scores[0, 1] != scores[0, 2]  # but positions do matter


def test_attention_matches_explicit_softmax() -> None:
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(dim=12, attn_dim=16, heads=2)
    x = torch.randn(3, 9, 12)
    q, k, v = attn.qkv(x).view(3, 9, 3, 2, 8).permute(2, 0, 3, 1, 4)
    q, k = attn.rope(q), attn.rope(k)
    weights = torch.softmax(q @ k.mT / 8**0.5, dim=-1)
    expected = attn.out((weights @ v).transpose(1, 2).reshape(3, 9, 16))
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)


def test_block_mixes_along_both_axes_and_keeps_shape() -> None:
    torch.manual_seed(0)
    block = TFLocoformerBlock(dim=8, heads=2, attn_dim=8, ffn_hidden=12, kernel=3, groups=2)
    x = torch.randn(2, 11, 5, 8, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    # One output element depends on every frame and every bin of its own example only.
    (grad,) = torch.autograd.grad(y[0, 5, 2].sum(), x)
    assert (grad[0].abs().sum(-1) > 0).all()
    assert (grad[1] == 0).all()
