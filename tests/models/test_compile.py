"""TUSS traces into one graph under torch.compile and matches eager, gradients included.

The `aot_eager` backend runs Dynamo tracing and AOT autograd but skips Inductor's code
generation, which takes minutes on a small CPU; `fullgraph=True` fails on any graph break.
"""

from collections.abc import Callable

import pytest
import torch

from wildsep.models import PretrainedModel


@pytest.mark.slow
def test_tuss_compiles_without_graph_breaks(small: Callable[..., PretrainedModel]) -> None:
    model = small("tuss-medium")
    mix = torch.randn(2, 1001)
    ids = model.prompt_ids(["speech", "sfx", "speech"])
    expected = model(mix, ids)
    (expected_grad,) = torch.autograd.grad(expected.square().mean(), model.prompt_embeddings)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    est = compiled(mix, ids)
    (grad,) = torch.autograd.grad(est.square().mean(), model.prompt_embeddings)
    torch.testing.assert_close(est, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad, expected_grad, atol=1e-6, rtol=1e-4)
