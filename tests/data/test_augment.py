"""Demucs augmentations: every one keeps mixture = sum of sources, and each does what it says
(shift = a delayed crop, ±1 signs, channel swaps, gains in range, per-source shuffles within
groups that carry prompts along)."""

import pytest
import torch

from wildsep.data import Augment, AugmentConfig, FlipChannels, FlipSign, Remix, Scale, Shift

B, S, C, T = 8, 3, 2, 200


@pytest.fixture
def batch() -> dict:
    torch.manual_seed(0)
    references = torch.randn(B, S, C, T)
    prompts = [[f"e{b}s{s}" for s in range(S)] for b in range(B)]
    return {"mixture": references.sum(1), "references": references, "prompts": prompts}


@pytest.mark.parametrize(
    "module",
    [Shift(20), FlipSign(0.5), FlipChannels(0.5), Scale(0.25, 1.25), Remix(4)],
    ids=lambda m: type(m).__name__,
)
@pytest.mark.parametrize("mono", [False, True])
def test_mixture_is_the_sum_of_augmented_sources(batch: dict, module, mono: bool) -> None:
    if mono:
        batch = {**batch, "references": batch["references"][:, :, 0]}
    out = Augment(module)(batch, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out["mixture"], out["references"].sum(1))
    assert out["references"].shape[:2] == (B, S)


def test_shift_is_a_per_source_delayed_crop(batch: dict) -> None:
    x = batch["references"]
    y = Shift(20)(x, torch.Generator().manual_seed(0))
    assert y.shape == (B, S, C, T - 20)
    offsets = set()
    for b in range(B):
        for s in range(S):
            matches = [o for o in range(21) if torch.equal(y[b, s], x[b, s, :, o : o + T - 20])]
            assert len(matches) == 1
            offsets.add(matches[0])
    assert len(offsets) > 5
    assert torch.equal(Shift(20).eval()(x), x[..., : T - 20])


def test_flips_and_scale_act_per_source(batch: dict) -> None:
    x = batch["references"]
    g = torch.Generator().manual_seed(0)
    ratio = FlipSign(0.5)(x, g) / x
    assert set(ratio.flatten().round().tolist()) == {-1.0, 1.0}
    assert (ratio == ratio[..., :1, :1]).all(), "one sign per source"
    flipped = FlipChannels(0.5)(x, g)
    swapped = (flipped == x.flip(2)).flatten(2).all(-1)
    kept = (flipped == x).flatten(2).all(-1)
    assert (swapped | kept).all() and swapped.any() and kept.any()
    gains = Scale(0.25, 1.25)(x, g)[..., 0, 0] / x[..., 0, 0]
    assert gains.min() >= 0.25 - 1e-6 and gains.max() <= 1.25 + 1e-6
    for module in (FlipSign(1.0), FlipChannels(1.0), Scale()):
        assert torch.equal(module.eval()(x), x), "augmentations are training-only"


def test_remix_shuffles_each_source_within_groups_and_moves_prompts(batch: dict) -> None:
    out = Augment(Remix(4))(batch, generator=torch.Generator().manual_seed(3))
    x, y = batch["references"], out["references"]
    moved = False
    for b in range(B):
        for s in range(S):
            origin = int(out["prompts"][b][s][1 : out["prompts"][b][s].index("s")])
            assert origin // 4 == b // 4, "sources stay inside their group"
            assert out["prompts"][b][s].endswith(f"s{s}"), "sources keep their slot"
            assert torch.equal(y[b, s], x[origin, s])
            moved |= origin != b
    assert moved
    for s in range(S):  # a permutation: every source of every group used exactly once
        origins = sorted(int(out["prompts"][b][s][1:].split("s")[0]) for b in range(B))
        assert origins == list(range(B))


def test_from_config_builds_the_enabled_chain() -> None:
    config = AugmentConfig(shift_seconds=0.01, flip_sign_prob=0.5, scale=[0.5, 1.0])
    steps = Augment.from_config(config, 8000).steps
    assert [type(m) for m in steps] == [Shift, FlipSign, Scale] and steps[0].max_shift == 80
    assert len(Augment.from_config(AugmentConfig(), 8000).steps) == 0
    with pytest.raises(ValueError, match="remix_group_size"):
        AugmentConfig(remix_group_size=1)
