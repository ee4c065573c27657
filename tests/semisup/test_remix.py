"""The weak remix loss equals ℓ(ŝ_i, s_i) + ℓ(Σ_{j≠i} ŝ_j, x_u); objectives and interleaving."""

import itertools

import numpy as np
import pytest
import torch

from tests.tiny import TINY_SEPARATOR
from wildsep.engine import Objective
from wildsep.models import from_preset
from wildsep.objectives import (
    RemixObjective,
    SemiSupConfig,
    SemiSupervisedObjective,
    interleave_batches,
    weak_remix_loss,
)


def ell(est: np.ndarray, ref: np.ndarray, snr_max: float = 30.0) -> float:
    """The thresholded negative SNR of reference §1, written out in float64."""
    tau = 10 ** (-snr_max / 10)
    ref_energy = float(np.sum(ref**2))
    return 10 * np.log10(np.sum((ref - est) ** 2) + tau * ref_energy + 1e-8) - 10 * np.log10(
        ref_energy + 1e-8
    )


@pytest.fixture
def example():
    g = torch.Generator().manual_seed(0)
    references = torch.randn(3, 2, 800, generator=g)  # (g·s_i, x_u)
    return references


def test_conditional_weak_loss_is_the_formula(example):
    est = example + 0.3 * torch.randn(3, 2, 800, generator=torch.Generator().manual_seed(1))
    weak = weak_remix_loss(est, example, conditional=True)
    e, r = est.double().numpy(), example.double().numpy()
    for b in range(3):
        source, background = ell(e[b, 0], r[b, 0]), ell(e[b, 1], r[b, 1])
        assert weak.source[b].item() == pytest.approx(source, abs=1e-4)
        assert weak.background[b].item() == pytest.approx(background, abs=1e-4)
        assert weak.loss[b].item() == pytest.approx(source + background, abs=1e-4)


def test_unconditional_single_assignment_picks_the_best_output_for_s_i(example):
    g = torch.Generator().manual_seed(2)
    est = 0.5 * torch.randn(3, 4, 800, generator=g)
    est[0, 2] += example[0, 0]  # example 0: output 2 holds s_i
    est[1, 0] += example[1, 0]
    est = est.requires_grad_()
    weak = weak_remix_loss(est, example, conditional=False, assignment="single")
    e, r = est.detach().double().numpy(), example.double().numpy()
    for b in range(3):
        candidates = [ell(e[b, k], r[b, 0]) + ell(e[b].sum(0) - e[b, k], r[b, 1]) for k in range(4)]
        assert weak.loss[b].item() == pytest.approx(min(candidates), abs=1e-4)
        k = int(np.argmin(candidates))
        torch.testing.assert_close(weak.estimates[b, 0], est[b, k].detach())
    assert torch.equal(weak.estimates[0, 0], est[0, 2].detach())
    weak.loss.sum().backward()
    assert torch.isfinite(est.grad).all() and (est.grad.abs().sum(-1) > 0).all()


def test_unconditional_group_assignment_is_twice_mixit_over_all_splits(example):
    est = torch.randn(3, 4, 800, generator=torch.Generator().manual_seed(3))
    weak = weak_remix_loss(est, example, conditional=False, assignment="group")
    e, r = est.double().numpy(), example.double().numpy()
    for b in range(3):
        best = min(
            ell(np.sum(e[b][[m for m in range(4) if a[m] == 0]], 0), r[b, 0])
            + ell(np.sum(e[b][[m for m in range(4) if a[m] == 1]], 0), r[b, 1])
            for a in itertools.product((0, 1), repeat=4)
        )
        assert weak.loss[b].item() == pytest.approx(best, abs=1e-3)
    single = weak_remix_loss(est, example, conditional=False, assignment="single")
    assert (weak.loss <= single.loss + 1e-4).all()  # one output per group is a special case


def test_silent_background_gives_a_finite_loss():
    references = torch.randn(2, 2, 400)
    references[:, 1] = 0
    weak = weak_remix_loss(torch.randn(2, 2, 400), references, conditional=True)
    assert torch.isfinite(weak.loss).all()


def test_remix_objective_on_tuss_uses_prompts_class_and_background():
    torch.manual_seed(0)
    model = from_preset("tuss-medium", **TINY_SEPARATOR, prompts=("speech", "sfx", "rest"))
    references = torch.randn(2, 2, 4000)
    prompts = [["speech", "rest"], ["sfx", "rest"]]
    batch = {"mixture": references.sum(1), "references": references, "prompts": prompts}
    config = SemiSupConfig(manifest="m.jsonl", weight=0.5)
    terms = RemixObjective(config, conditional=True)(model, batch, step=0)
    est = model(batch["mixture"], prompts).detach().double().numpy()
    r = references.double().numpy()
    expected = np.mean([ell(est[b, 0], r[b, 0]) + ell(est[b, 1], r[b, 1]) for b in range(2)])
    assert terms["loss"].item() == pytest.approx(0.5 * expected, abs=1e-3)
    terms["loss"].backward()
    assert (model.prompt_embeddings.grad.abs().sum(-1) > 0).all()  # all three prompts used


class Counting(Objective):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []

    def forward(self, model, batch, step, micro=0):
        return {"loss": torch.tensor(1.0), "supervised_term": torch.tensor(2.0)}

    def after_step(self, model, step):
        self.steps.append(step)


def test_semisupervised_objective_dispatches_on_the_batch_kind():
    model = from_preset("backbone-medium", **TINY_SEPARATOR, n_outputs=3)
    supervised = Counting()
    objective = SemiSupervisedObjective(supervised, RemixObjective(SemiSupConfig(), False))
    references = torch.randn(2, 2, 2000)
    remix = {"mixture": references.sum(1), "references": references, "kind": "remix"}
    terms = objective(model, remix, step=0)
    assert set(terms) == {"loss", "weak_source", "weak_background", "remix_batches"}
    assert terms["remix_batches"] == 1
    plain = objective(model, {"mixture": references.sum(1)}, step=1)
    assert plain["supervised_term"] == 2 and plain["remix_batches"] == 0
    objective.after_step(model, 5)
    assert supervised.steps == [5]


def test_wrapping_keeps_the_stage_objectives_checkpoint_names():
    from wildsep.objectives import RemixingObjective, RemixingObjectiveConfig

    model = from_preset("backbone-medium", **TINY_SEPARATOR, n_outputs=3)
    plain = RemixingObjective(RemixingObjectiveConfig(), model)  # has an EMA teacher
    wrapped = SemiSupervisedObjective(
        RemixingObjective(RemixingObjectiveConfig(), model), RemixObjective(SemiSupConfig(), False)
    )
    assert wrapped.state_dict().keys() == plain.state_dict().keys()
    plain.teacher_ready.fill_(True)
    wrapped.load_state_dict(plain.state_dict())  # a checkpoint taken without remixing
    assert bool(wrapped.supervised.teacher_ready)


def numbered(tag):
    def source(position):
        while True:
            yield (tag, position)
            position += 1

    return source


@pytest.mark.parametrize("ratio", [0.25, 0.5, 1 / 3, 1.0])
def test_interleaving_is_a_pure_function_of_the_position(ratio):
    source = interleave_batches(numbered("sup"), numbered("remix"), ratio)
    stream = list(itertools.islice(source(0), 60))
    remixes = [i for i, (tag, _) in enumerate(stream) if tag == "remix"]
    assert len(remixes) == round(60 * ratio)
    # each source is read in order, without gaps or repeats
    for tag in ("sup", "remix"):
        assert [p for t, p in stream if t == tag] == list(range(sum(t == tag for t, _ in stream)))
    for start in (1, 7, 13, 40):  # resuming anywhere continues the same stream
        assert list(itertools.islice(source(start), 20)) == stream[start : start + 20]
    if ratio == 0.25:
        assert remixes[:3] == [3, 7, 11]
