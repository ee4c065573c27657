"""The weak remix loss of a model with named outputs (Demucs, assignment "named") against the
formula written out per example."""

import torch

from losses import tuss_loss
from wildsep.objectives import weak_remix_loss


def test_named_assignment_scores_the_absent_stems_output_and_the_sum_of_the_others():
    torch.manual_seed(0)
    est = torch.randn(3, 4, 64) * torch.tensor([1.0, 0.1, 3.0])[:, None, None]
    est[1, 2] = 0.0  # a silent output
    refs = torch.randn(3, 2, 64)
    refs[2, 0] = 0.0  # a silent labeled source
    index = torch.tensor([2, 0, 3])
    weak = weak_remix_loss(
        est, refs, conditional=False, assignment="named", index=index, snr_max=30.0
    )
    for b in range(3):
        k = int(index[b])
        others = sum(est[b, j] for j in range(4) if j != k)
        mixture = refs[b].sum(0)[None, None]

        source, background = (
            tuss_loss(e[None, None], r[None, None], mixture, snr_max=30.0)[0, 0]
            for e, r in ((est[b, k], refs[b, 0]), (others, refs[b, 1]))
        )
        torch.testing.assert_close(weak.source[b], source)
        torch.testing.assert_close(weak.background[b], background)
        torch.testing.assert_close(weak.loss[b], source + background)
