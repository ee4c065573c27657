import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from losses import mixit, thresholded_snr


def all_mixing_matrices(n, m):
    """Every binary N×M matrix with exactly one 1 per column (N^M of them)."""
    for groups in itertools.product(range(n), repeat=m):
        matrix = torch.zeros(n, m)
        matrix[list(groups), list(range(m))] = 1
        yield matrix


def brute_force_losses(est, mixtures, snr_max):
    """(B, N^M) waveform loss of every candidate: the plain reference."""
    n, m = mixtures.shape[1], est.shape[1]
    return torch.stack(
        [
            thresholded_snr(a @ est, mixtures, snr_max=snr_max).mean(-1)
            for a in all_mixing_matrices(n, m)
        ],
        dim=1,
    )


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 3),
    n=st.integers(1, 3),
    extra=st.integers(0, 4),
    length=st.integers(8, 300),
    snr_max=st.sampled_from([30.0, 10.0, None]),
    seed=st.integers(0, 2**16),
)
def test_exact_mixit_is_the_brute_force_minimum(batch, n, extra, length, snr_max, seed):
    m = n + extra
    if n**m > 2000:
        m = n
    gen = torch.Generator().manual_seed(seed)
    est = torch.randn(batch, m, length, generator=gen)
    mixtures = torch.randn(batch, n, length, generator=gen)
    result = mixit(est, mixtures, snr_max=snr_max)
    every = brute_force_losses(est, mixtures, snr_max)
    torch.testing.assert_close(result.loss, every.min(1).values, rtol=1e-5, atol=1e-4)
    assert (result.loss[:, None] <= every + 1e-4).all()
    # one 1 per column, and the remix is that matrix times the outputs
    assert ((result.mixing == 0) | (result.mixing == 1)).all()
    assert (result.mixing.sum(1) == 1).all()
    torch.testing.assert_close(result.remixed, result.mixing @ est)


def test_exact_mixit_at_m16_matches_brute_force_on_a_structured_problem():
    """M=16 (65,536 candidates) where the true assignment is known and unique."""
    torch.manual_seed(0)
    sources = torch.randn(2, 16, 400)
    groups = torch.randint(0, 2, (2, 16))
    truth = (groups.unsqueeze(1) == torch.arange(2).view(1, 2, 1)).float()
    mixtures = truth @ sources
    result = mixit(sources + 0.01 * torch.randn_like(sources), mixtures)
    assert torch.equal(result.mixing, truth)


def well_separated_problem(batch, n, m, noise, seed):
    gen = torch.Generator().manual_seed(seed)
    sources = torch.randn(batch, m, 2000, generator=gen)  # independent noise: near-orthogonal
    gains = torch.rand(batch, m, 1, generator=gen) + 0.5
    sources = sources * gains
    groups = torch.stack([torch.randperm(m, generator=gen) % n for _ in range(batch)])
    truth = (groups.unsqueeze(1) == torch.arange(n).view(1, n, 1)).float()
    mixtures = truth @ sources
    est = sources + noise * torch.randn(sources.shape, generator=gen)
    return est, mixtures, truth


@pytest.mark.parametrize("n,m", [(2, 4), (2, 8), (3, 6), (2, 16), (4, 12)])
def test_efficient_equals_exact_on_noisy_copies_of_separated_sources(n, m):
    est, mixtures, truth = well_separated_problem(3, n, m, noise=0.05, seed=m)
    efficient = mixit(est, mixtures, method="efficient")
    assert torch.equal(efficient.mixing, truth)
    if n**m <= 2**20:
        exact = mixit(est, mixtures, method="exact")
        assert torch.equal(exact.mixing, truth)
        torch.testing.assert_close(efficient.loss, exact.loss)


def test_efficient_is_never_better_than_exact():
    torch.manual_seed(3)
    est, mixtures = torch.randn(8, 6, 500), torch.randn(8, 2, 500)
    exact, efficient = mixit(est, mixtures), mixit(est, mixtures, method="efficient")
    assert (exact.loss <= efficient.loss + 1e-5).all()
    assert (efficient.mixing.sum(1) == 1).all()


@pytest.mark.parametrize("method", ["exact", "efficient"])
@pytest.mark.parametrize("silent", ["est", "mixtures", "both"])
def test_finite_values_and_gradients_on_silence(method, silent):
    est = torch.zeros(2, 4, 100) if silent in ("est", "both") else torch.randn(2, 4, 100)
    mixtures = torch.zeros(2, 2, 100) if silent in ("mixtures", "both") else torch.randn(2, 2, 100)
    est.requires_grad_(True)
    result = mixit(est, mixtures, method=method)
    result.loss.sum().backward()
    assert torch.isfinite(result.loss).all()
    assert torch.isfinite(est.grad).all()


def test_gradient_only_through_the_chosen_assignment():
    est = torch.randn(2, 4, 100, requires_grad=True)
    mixtures = torch.randn(2, 2, 100)
    result = mixit(est, mixtures)
    result.loss.sum().backward()
    manual = est.detach().clone().requires_grad_(True)
    thresholded_snr(result.mixing @ manual, mixtures).mean(-1).sum().backward()
    torch.testing.assert_close(est.grad, manual.grad)


def test_bf16_inputs_give_float32_loss():
    est, mixtures = torch.randn(2, 4, 1000).bfloat16(), torch.randn(2, 2, 1000).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = mixit(est, mixtures)
    assert result.loss.dtype == torch.float32
    torch.testing.assert_close(result.loss, mixit(est.float(), mixtures.float()).loss)


@pytest.mark.parametrize(
    "est_shape,mix_shape,kwargs,match",
    [
        ((2, 2, 10), (2, 3, 10), {}, "1 ≤ N ≤ M"),
        ((2, 4, 10), (2, 2, 11), {}, "matching B and T"),
        ((2, 4, 10), (2, 10), {}, r"\(B, N, \[C,\] T\)"),
        ((1, 24, 10), (1, 2, 10), {}, "use method='efficient'"),
        ((1, 4, 10), (1, 2, 10), {"method": "greedy"}, "unknown MixIT method"),
    ],
)
def test_bad_arguments_are_clear_errors(est_shape, mix_shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mixit(torch.randn(est_shape), torch.randn(mix_shape), **kwargs)


def test_the_benchmark_baseline_computes_the_same_loss():
    from benchmarks.losses import naive_mixit

    est, mixtures = torch.randn(3, 5, 300), torch.randn(3, 2, 300)
    torch.testing.assert_close(naive_mixit(est, mixtures), mixit(est, mixtures).loss)


@pytest.mark.parametrize("method", ["exact", "efficient"])
def test_stereo_mixit_sums_energies_over_channels(method):
    """(B, M, C, T): the loss of an assignment is the thresholded SNR with energies summed over
    both channels, and the best assignment is the same for both channels; checked against
    every assignment enumerated in a loop."""
    import itertools

    torch.manual_seed(0)
    refs = torch.randn(3, 2, 2, 200) * torch.tensor([1.0, 0.05, 2.0])[:, None, None, None]
    refs[2, 1, 1] = 0  # one silent channel
    est = torch.randn(3, 4, 2, 200) * 0.3 + refs.repeat_interleave(2, 1) / 2
    result = mixit(est, refs, method=method)
    assert result.remixed.shape == refs.shape
    tau = 1e-3
    for b in range(3):

        def loss(a, b=b):
            total = 0.0
            for n in range(2):
                remix = sum(est[b, m] for m in range(4) if a[m] == n) + 0 * est[b, 0]
                error = (refs[b, n] - remix).pow(2).sum() + tau * refs[b, n].pow(2).sum() + 1e-8
                total += 10 * torch.log10(error) - 10 * torch.log10(refs[b, n].pow(2).sum() + 1e-8)
            return total / 2

        chosen = tuple(int(result.mixing[b, :, m].argmax()) for m in range(4))
        torch.testing.assert_close(result.loss[b], loss(chosen), rtol=1e-4, atol=1e-4)
        if method == "exact":
            best = min(loss(a) for a in itertools.product(range(2), repeat=4))
            torch.testing.assert_close(result.loss[b], best, rtol=1e-4, atol=1e-4)
