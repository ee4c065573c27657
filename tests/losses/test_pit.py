import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from losses import pairwise_loss, pit, si_snr, thresholded_snr, tuss_loss


def brute_force_pit(est, ref, loss, groups=None):
    """Plain reference: try every permutation of every example in Python."""
    best_losses, best_perms = [], []
    n = est.shape[1]
    for b in range(est.shape[0]):
        candidates = []
        for perm in itertools.permutations(range(n)):
            if groups is not None and any(groups[b][p] != groups[b][i] for i, p in enumerate(perm)):
                continue
            value = loss(est[b, list(perm)], ref[b]).mean().item()
            candidates.append((value, perm))
        value, perm = min(candidates)
        best_losses.append(value)
        best_perms.append(perm)
    return torch.tensor(best_losses), torch.tensor(best_perms)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 3),
    n=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    hungarian=st.booleans(),
)
def test_pit_matches_brute_force(batch, n, seed, hungarian):
    gen = torch.Generator().manual_seed(seed)
    est, ref = torch.randn(batch, n, 64, generator=gen), torch.randn(batch, n, 64, generator=gen)
    result = pit(est, ref, exhaustive_max=0 if hungarian else 8)
    expected, _ = brute_force_pit(est, ref, thresholded_snr)
    torch.testing.assert_close(result.loss, expected, rtol=1e-5, atol=1e-5)
    # the permutation is a permutation and the estimates are reordered by it
    assert (result.perm.sort(-1).values == torch.arange(n)).all()
    torch.testing.assert_close(
        result.est, torch.stack([e[p] for e, p in zip(est, result.perm, strict=True)])
    )


def test_pit_recovers_a_known_permutation_with_hungarian_above_threshold():
    ref = torch.randn(2, 10, 200)
    true = torch.stack([torch.randperm(10), torch.randperm(10)])
    est = torch.empty_like(ref)
    for b in range(2):
        est[b, true[b]] = ref[b] + 0.01 * torch.randn(10, 200)  # est[true[n]] answers ref n
    result = pit(est, ref)  # N=10 > exhaustive_max → Hungarian
    assert torch.equal(result.perm, true)
    torch.testing.assert_close(result.est, ref, atol=0.1, rtol=0)


@pytest.mark.parametrize("hungarian", [False, True])
def test_groups_restrict_permutations(hungarian):
    torch.manual_seed(1)
    ref = torch.randn(2, 5, 100)
    est = ref.roll(1, dims=1)  # unrestricted optimum crosses groups
    groups = torch.tensor([[0, 0, 1, 2, 2], [3, 1, 3, 1, 3]])
    result = pit(est, ref, groups=groups, exhaustive_max=0 if hungarian else 8)
    assert (groups.gather(1, result.perm) == groups).all()
    expected, _ = brute_force_pit(est, ref, thresholded_snr, groups=groups.tolist())
    torch.testing.assert_close(result.loss, expected, rtol=1e-5, atol=1e-5)
    assert (result.loss > pit(est, ref).loss + 1).all()  # the restriction really bit


def test_groups_broadcast_from_one_label_row():
    est, ref = torch.randn(3, 4, 50), torch.randn(3, 4, 50)
    a = pit(est, ref, groups=torch.tensor([0, 0, 1, 1]))
    b = pit(est, ref, groups=torch.tensor([[0, 0, 1, 1]] * 3))
    assert torch.equal(a.perm, b.perm)


def test_custom_loss_and_multichannel():
    est, ref = torch.randn(2, 3, 2, 80), torch.randn(2, 3, 2, 80)

    def neg_si_snr(e, r):
        return -si_snr(e, r)

    result = pit(est, ref, loss=neg_si_snr)
    expected, _ = brute_force_pit(est, ref, neg_si_snr)
    torch.testing.assert_close(result.loss, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hungarian", [False, True])
def test_mixture_reaches_the_loss_per_example(hungarian):
    """Mixtures 40 dB apart in one batch: each example's zero-reference floor uses its own."""
    torch.manual_seed(0)
    ref = torch.randn(4, 3, 100) * torch.tensor([1.0, 0.01, 3.0, 0.1])[:, None, None]
    ref[:, 2] = 0  # silent references: the zero-reference form applies to them
    ref[1, 0, 50:] = 0
    mix = ref.sum(1)
    est = torch.randn(4, 3, 100) * 0.1
    result = pit(est, ref, loss=tuss_loss, mixture=mix, exhaustive_max=0 if hungarian else 8)
    expected = torch.stack(
        [
            brute_force_pit(est[b : b + 1], ref[b : b + 1], partial_mix(mix[b]))[0][0]
            for b in range(4)
        ]
    )
    torch.testing.assert_close(result.loss, expected, rtol=1e-5, atol=1e-5)


def partial_mix(mixture):
    return lambda e, r: tuss_loss(e, r, mixture)


def test_a_loss_closing_over_per_example_tensors_is_refused():
    """The idiom that used to mix examples: a (B, 1, 1, T) mixture fits the pairwise search but
    broadcasts to (B, B, N) on the chosen pairs."""
    ref = torch.randn(3, 2, 50)
    mix = ref.sum(1)
    with pytest.raises(ValueError, match="mixture="):
        pit(torch.randn(3, 2, 50), ref, loss=lambda e, r: tuss_loss(e, r, mix[:, None, None]))
    with pytest.raises(ValueError, match="mixture must be one signal per example"):
        pit(torch.randn(3, 2, 50), ref, loss=tuss_loss, mixture=mix[:, None])


def test_pairwise_loss_entries():
    est, ref = torch.randn(2, 3, 40), torch.randn(2, 3, 40)
    matrix = pairwise_loss(est, ref)
    torch.testing.assert_close(matrix[1, 2, 0], thresholded_snr(est[1, 2], ref[1, 0]))


def test_gradient_flows_through_chosen_pairs_only_and_is_finite_on_silence():
    est = torch.zeros(2, 3, 64, requires_grad=True)
    result = pit(est, torch.zeros(2, 3, 64))
    result.loss.sum().backward()
    assert torch.isfinite(result.loss).all() and torch.isfinite(est.grad).all()


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="must match"):
        pit(torch.randn(2, 3, 10), torch.randn(2, 2, 10))
