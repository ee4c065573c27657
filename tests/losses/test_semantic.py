import pytest
import torch

from losses import semantic_loss


def reference(logits, mixing, labels, pooling):
    """Plain loops over examples, mixtures and classes (float32, like the implementation:
    the clamp at 1 − 1e-6 is only float32-exact)."""
    batch, n, classes = labels.shape
    out = torch.zeros(batch)
    probs = torch.sigmoid(logits)
    for b in range(batch):
        total = 0.0
        for i in range(n):
            assigned = [m for m in range(logits.shape[1]) if mixing[b, i, m] == 1]
            for c in range(classes):
                p = [probs[b, m, c] for m in assigned]
                if not p:
                    pooled = torch.tensor(0.0)
                elif pooling == "max":
                    pooled = max(p)
                elif pooling == "sum":
                    pooled = min(sum(p), torch.tensor(1.0))
                else:
                    pooled = 1 - torch.prod(torch.stack([1 - q for q in p]))
                pooled = pooled.clamp(1e-6, 1 - 1e-6)
                y = labels[b, i, c]
                total += -(y * torch.log(pooled) + (1 - y) * torch.log(1 - pooled))
        out[b] = total / (n * classes)
    return out


@pytest.mark.parametrize("pooling", ["max", "prob_or", "sum"])
def test_semantic_loss_matches_loops(pooling):
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 4)
    groups = torch.randint(0, 2, (3, 5))
    groups[0] = 0  # mixture 1 of example 0 gets no output
    mixing = (groups.unsqueeze(1) == torch.arange(2).view(1, 2, 1)).float()
    labels = torch.randint(0, 2, (3, 2, 4)).float()
    labels[0, 1] = 0  # ...and has no labelled class
    expected = reference(logits, mixing, labels, pooling)
    torch.testing.assert_close(
        semantic_loss(logits, mixing, labels, pooling), expected, rtol=1e-4, atol=1e-4
    )


def test_semantic_loss_gradient_reaches_assigned_outputs_and_is_finite():
    logits = torch.zeros(2, 4, 3, requires_grad=True)
    mixing = torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 1]]).expand(2, 2, 4)
    labels = torch.ones(2, 2, 3)
    semantic_loss(logits, mixing, labels).sum().backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad < 0).all()


def test_unknown_pooling_is_a_clear_error():
    with pytest.raises(ValueError, match="prob_or"):
        semantic_loss(torch.randn(1, 2, 3), torch.ones(1, 1, 2), torch.ones(1, 1, 3), "mean")
