"""A tiny TUSS can learn: it overfits one fixed batch of demo speech + sfx mixtures."""

import numpy as np
import pytest
import torch

from wildsep.data.demo import synth_sfx, synth_speech
from wildsep.models import from_preset


def _snr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    error = (reference - estimate).square().sum(-1)
    return 10 * torch.log10(reference.square().sum(-1) / error)


@pytest.mark.slow
def test_tiny_tuss_overfits_a_two_source_batch() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    sr, seconds = 8000, 0.5
    sources = torch.tensor(
        np.stack([[synth_speech(rng, sr, seconds), synth_sfx(rng, sr, seconds)] for _ in range(2)])
    )  # (B=2, [speech, sfx], T)
    mix = sources.sum(1)
    model = from_preset(
        "tuss-medium",
        sample_rate=sr,
        n_fft=128,
        hop=32,
        dim=16,
        heads=2,
        groups=2,
        cross_blocks=1,
        cross_attn_dim=16,
        cross_ffn_hidden=32,
        tse_blocks=1,
        tse_attn_dim=16,
        tse_ffn_hidden=32,
        mask_mlp_ratio=2,
        prompts=("speech", "sfx"),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = -_snr(model(mix, ["speech", "sfx"]), sources).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        improvement = _snr(model(mix, ["speech", "sfx"]), sources) - _snr(mix[:, None], sources)
    print(f"SNR improvement per (example, source) after 150 steps: {improvement.tolist()}")
    assert improvement.mean() >= 10, improvement
    assert (improvement > 3).all(), improvement
