import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from losses import (
    batch_shuffle,
    keep_most_energetic,
    mixture_consistency,
    remix,
    remixing_loss,
    thresholded_snr,
    unremix,
)


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 9),
    k=st.integers(1, 5),
    constrained=st.booleans(),
    channel_shuffle=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_shuffle_is_a_bijection_and_unremix_inverts_remix(
    batch, k, constrained, channel_shuffle, seed
):
    if constrained and batch < k:
        batch = k
    gen = torch.Generator().manual_seed(seed)
    idx = batch_shuffle(
        batch, k, constrained=constrained, channel_shuffle=channel_shuffle, generator=gen
    )
    assert idx.shape == (batch, k)
    assert torch.equal(idx.flatten().sort().values, torch.arange(batch * k))
    example = idx // k
    if constrained:  # K different examples in every pseudo-mixture
        assert all(len(set(row.tolist())) == k for row in example)
    if not channel_shuffle:  # slot k always comes from source k
        assert torch.equal(idx % k, torch.arange(k).expand(batch, k))
    sources = torch.randn(batch, k, 2, 30)
    shuffled, mixtures = remix(sources, idx)
    torch.testing.assert_close(mixtures, shuffled.sum(1))
    for b, s in itertools.product(range(batch), range(k)):
        assert torch.equal(shuffled[b, s], sources[idx[b, s] // k, idx[b, s] % k])
    assert torch.equal(unremix(shuffled, idx), sources)


def test_shuffle_is_reproducible_and_random():
    a = batch_shuffle(8, 3, generator=torch.Generator().manual_seed(1))
    b = batch_shuffle(8, 3, generator=torch.Generator().manual_seed(1))
    c = batch_shuffle(8, 3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_constrained_shuffle_needs_enough_examples():
    with pytest.raises(ValueError, match="batch size ≥ number of sources"):
        batch_shuffle(2, 3)


def test_keep_most_energetic():
    est = torch.randn(2, 5, 100) * torch.tensor([1.0, 5, 0.1, 3, 2]).view(1, 5, 1)
    top = keep_most_energetic(est, 3)
    assert torch.equal(top, est[:, [1, 3, 4]])


def reference_remixing(student, teacher, mixtures, idx, snr_max=30.0):
    """Loops: PIT per pseudo-mixture over all permutations, then scatter back by hand."""
    batch, k, _ = student.shape
    targets = torch.stack([torch.stack([teacher[i // k, i % k] for i in row]) for row in idx])
    remixit, aligned = [], torch.empty_like(student)
    for b in range(batch):
        best = min(
            itertools.permutations(range(k)),
            key=lambda p: thresholded_snr(student[b, list(p)], targets[b], snr_max).mean().item(),
        )
        aligned[b] = student[b, list(best)]
        remixit.append(thresholded_snr(aligned[b], targets[b], snr_max).mean())
    back = torch.zeros_like(mixtures)
    for b, s in itertools.product(range(batch), range(k)):
        back[idx[b, s] // k] += aligned[b, s]
    return thresholded_snr(back, mixtures, snr_max), torch.stack(remixit)


@pytest.mark.parametrize("channel_shuffle", [False, True])
def test_remixing_loss_matches_loops(channel_shuffle):
    torch.manual_seed(0)
    mixtures = torch.randn(5, 200)
    teacher = mixture_consistency(torch.randn(5, 3, 200), mixtures)
    idx = batch_shuffle(5, 3, channel_shuffle=channel_shuffle)
    student = torch.randn(5, 3, 200)
    out = remixing_loss(
        student, teacher, mixtures, idx, self_remixing_weight=0.7, remixit_weight=0.3
    )
    self_ref, remixit_ref = reference_remixing(student, teacher, mixtures, idx)
    torch.testing.assert_close(out.self_remixing, self_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.remixit, remixit_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, 0.7 * self_ref + 0.3 * remixit_ref, rtol=1e-5, atol=1e-5)


def test_a_student_that_reproduces_the_shuffled_teacher_reaches_the_cap():
    mixtures = torch.randn(4, 300)
    teacher = mixture_consistency(torch.randn(4, 2, 300), mixtures)
    idx = batch_shuffle(4, 2)
    targets, _ = remix(teacher, idx)
    student = targets.flip(1)  # right sources, wrong order: PIT must undo it
    out = remixing_loss(student, teacher, mixtures, idx, remixit_weight=1.0)
    torch.testing.assert_close(out.self_remixing, torch.full((4,), -30.0), atol=1e-3, rtol=0)
    torch.testing.assert_close(out.remixit, torch.full((4,), -30.0), atol=1e-3, rtol=0)
    assert torch.equal(out.perm, torch.tensor([[1, 0]] * 4))


def test_no_gradient_into_the_teacher():
    mixtures = torch.randn(3, 100)
    teacher = torch.randn(3, 2, 100, requires_grad=True)
    student = torch.randn(3, 2, 100, requires_grad=True)
    remixing_loss(student, teacher, mixtures, batch_shuffle(3, 2)).loss.sum().backward()
    assert teacher.grad is None and torch.isfinite(student.grad).all()
