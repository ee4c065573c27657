"""The supervised (GASS) objective against a per-example brute force over every assignment of
the M outputs, and the semi-supervised MixIT interleaving against its counting rule."""

import itertools
import math

import pytest
import torch

from tests.tiny import FixedOutputs
from wildsep.objectives import (
    MixITObjective,
    MixITObjectiveConfig,
    SemiSupervisedMixIT,
    SemiSupMixITConfig,
    SupervisedObjective,
    SupervisedObjectiveConfig,
    semisup_mixit_batches,
)

T = 400


def pair_loss(est, ref, mixture, snr_max=30.0, w0=0.1):
    """Reference §1, in float64: thresholded negative SNR for an active reference (RMS > 1e-8),
    w₀·10·log10(‖ŝ‖² + τ‖m‖² + 1e-7) for a silent one."""
    est, ref, mixture = est.double(), ref.double(), mixture.double()
    tau = 10 ** (-snr_max / 10)
    ref_energy = float((ref**2).sum())
    if math.sqrt(ref_energy / ref.shape[-1]) > 1e-8:
        error = float(((ref - est) ** 2).sum())
        return 10 * math.log10(error + tau * ref_energy + 1e-8) - 10 * math.log10(ref_energy + 1e-8)
    return w0 * 10 * math.log10(float((est**2).sum()) + tau * float((mixture**2).sum()) + 1e-7)


def brute_force(outputs, references, mixture, **kwargs):
    """Per example: the N references padded with silence to M, the minimum over all M!
    assignments of outputs to references of the mean pair loss; then the batch mean."""
    values = []
    for est, refs, mix in zip(outputs, references, mixture, strict=True):
        m, n = est.shape[0], refs.shape[0]
        padded = list(refs) + [torch.zeros(T)] * (m - n)
        values.append(
            min(
                sum(pair_loss(est[p[k]], padded[k], mix, **kwargs) for k in range(m)) / m
                for p in itertools.permutations(range(m))
            )
        )
    return sum(values) / len(values)


def example_batch(outputs=5, seed=0):
    """B = 4 examples with 1, 2, 3 and 4 active references out of N = 4 (the rest silent), at
    levels from 0.01 to 10, and M outputs: noisy copies of some references in shuffled order,
    a silent output, and leftovers."""
    g = torch.Generator().manual_seed(seed)
    sources = torch.randn(4, 4, T, generator=g)
    active = torch.tensor([[1, 0, 0, 0], [0, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1]])
    levels = torch.tensor([0.01, 0.3, 3.0, 10.0]).view(4, 1, 1)
    references = sources * active.unsqueeze(-1) * levels
    mixture = references.sum(1)
    est = 0.3 * levels * torch.randn(4, outputs, T, generator=g)
    for b in range(4):
        order = torch.randperm(outputs, generator=g)
        for k in range(4):
            est[b, order[k]] += references[b, k] * (0.5 + 0.25 * k)
        est[b, order[-1]] = 0.0  # a silent output
    return est, references, mixture


@pytest.mark.parametrize("outputs", [4, 5])
@pytest.mark.parametrize("exhaustive_max", [8, 1])  # enumeration, and Hungarian
def test_supervised_loss_equals_the_brute_force_over_every_assignment(outputs, exhaustive_max):
    est, references, mixture = example_batch(outputs)
    objective = SupervisedObjective(SupervisedObjectiveConfig(exhaustive_max=exhaustive_max))
    model = FixedOutputs(est)
    terms = objective(model, {"mixture": mixture, "references": references}, step=0)
    expected = brute_force(est, references, mixture)
    assert terms["loss"].item() == pytest.approx(expected, abs=1e-4)
    assert terms["active_references"].item() == pytest.approx((1 + 2 + 3 + 4) / 4)
    terms["loss"].backward()
    assert torch.isfinite(model.outputs.grad).all()  # silent outputs and references included


def test_supervised_loss_pads_fewer_references_than_outputs_with_silence():
    """N = 2 references for M = 4 outputs: the same as the 2 references plus 2 silent ones."""
    est, references, mixture = example_batch(4, seed=1)
    two = references[:, 1:3]
    mixture = two.sum(1)
    objective = SupervisedObjective(SupervisedObjectiveConfig(snr_max=20.0, zero_ref_weight=1.0))
    terms = objective(FixedOutputs(est), {"mixture": mixture, "references": two}, step=0)
    expected = brute_force(est, two, mixture, snr_max=20.0, w0=1.0)
    assert terms["loss"].item() == pytest.approx(expected, abs=1e-4)


def test_more_references_than_outputs_is_a_clear_error():
    est, references, mixture = example_batch(4)
    objective = SupervisedObjective(SupervisedObjectiveConfig())
    with pytest.raises(ValueError, match=r"4 references but the model has 3 outputs.*num_sources"):
        objective(FixedOutputs(est[:, :3]), {"mixture": mixture, "references": references}, step=0)


def numbered(kind):
    """A batch source whose batch at position p is {"id": (kind, p)}."""

    def source(position):
        while True:
            yield {"id": (kind, position), "mixture": torch.zeros(1, T)}
            position += 1

    return source


@pytest.mark.parametrize("ratio", [0.5, 0.25, 1 / 3, 0.7])
def test_interleaving_gives_the_supervised_ratio_and_resumes_at_any_position(ratio):
    config = SemiSupMixITConfig(supervised_ratio=ratio)
    source = semisup_mixit_batches(numbered("mom"), numbered("labeled"), config)
    first = [b for b, _ in zip(source(0), range(60), strict=False)]
    for p in range(61):  # ⌊p·r⌋ supervised batches before position p, evenly spread
        kinds = [b["kind"] for b in first[:p]]
        assert kinds.count("supervised") == math.floor(p * ratio + 1e-9)
    # each source is read in order, without gaps or repeats
    for kind, name in (("supervised", "labeled"), ("mom", "mom")):
        ids = [b["id"] for b in first if b["kind"] == kind]
        assert ids == [(name, i) for i in range(len(ids))]
    for start in (1, 7, 33):  # resuming anywhere gives what the uninterrupted run saw
        resumed = [b for b, _ in zip(source(start), range(20), strict=False)]
        assert [(b["kind"], b["id"]) for b in resumed] == [
            (b["kind"], b["id"]) for b in first[start : start + 20]
        ]


def test_sum_mode_pairs_one_batch_of_each_at_the_global_position():
    config = SemiSupMixITConfig(mode="sum")
    source = semisup_mixit_batches(numbered("mom"), numbered("labeled"), config)
    for position in (0, 5):
        batch = next(source(position))
        assert batch["id"] == ("mom", position)
        assert batch["labeled"]["id"] == ("labeled", position)


def test_semisupervised_mixit_applies_each_loss_to_its_batches():
    est, references, mixture = example_batch(4)
    model = FixedOutputs(est)
    labeled = {"mixture": mixture, "references": references}
    mom = {"mixture": mixture, "references": references[:, :2]}
    mixit_config, sup_config = MixITObjectiveConfig(), SupervisedObjectiveConfig()
    mixit = MixITObjective(mixit_config)(model, mom, 0)["loss"]
    supervised = SupervisedObjective(sup_config)(model, labeled, 0)["loss"]

    def run(mode, batch):
        config = SemiSupMixITConfig(mode=mode, supervised_weight=0.5)
        return SemiSupervisedMixIT(config, mixit_config, sup_config)(model, batch, 0)

    on_labeled = run("interleave", {**labeled, "kind": "supervised"})
    assert on_labeled["loss"].item() == pytest.approx(0.5 * supervised.item(), abs=1e-5)
    assert on_labeled["supervised_batches"].item() == 1.0
    on_mom = run("interleave", {**mom, "kind": "mom"})
    assert on_mom["loss"].item() == pytest.approx(mixit.item(), abs=1e-5)
    assert on_mom["supervised_batches"].item() == 0.0
    both = run("sum", {**mom, "labeled": labeled})
    assert both["loss"].item() == pytest.approx(mixit.item() + 0.5 * supervised.item(), abs=1e-5)
