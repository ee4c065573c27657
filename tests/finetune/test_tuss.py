"""TUSS fine-tuning: objective pieces, and the recipe end to end on the tiny demo corpus."""

from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from finetune.tuss import main
from tests.tiny import TINY_SEPARATOR, FixedOutputs, model_overrides, run_overrides
from wildsep.config import ConfigError
from wildsep.engine import latest_checkpoint
from wildsep.models import TUSS, from_preset, load_pretrained
from wildsep.objectives import TUSSObjective, TUSSObjectiveConfig, drop_prompts, prompt_groups

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs" / "demo_tuss.yaml")


def overrides(tmp_path: Path, corpus: Path, steps: int = 3, **extra: object) -> list[str]:
    """`run_overrides` for `finetune/tuss.py` on the demo corpus's pools, batches of 2."""
    pools = {
        "data.pools.source": corpus / "pools",
        "data.pools.cache_dir": tmp_path / "cache",
        "data.batch_size": 2,
    }
    return run_overrides(tmp_path, corpus, steps, **{**pools, **extra})


def test_prompt_groups_label_equal_names_alike():
    groups = prompt_groups([["speech", "sfx", "speech"], ["bass", "bass", "drums"]])
    assert groups[0, 0] == groups[0, 2] != groups[0, 1]
    assert groups[1, 0] == groups[1, 1] != groups[1, 2]


def test_drop_prompts_removes_only_single_prompts_and_their_references():
    refs = torch.arange(2 * 3 * 4, dtype=torch.float).view(2, 3, 4)
    prompts = [["speech", "speech", "sfx"], ["bass", "drums", "vocals"]]
    kept, kept_prompts = drop_prompts(refs, prompts, 1, np.random.default_rng(0))
    assert kept.shape == (2, 2, 4)
    assert kept_prompts[0] == ["speech", "speech"]  # the duplicated pair is never split
    for b in range(2):
        for n, name in enumerate(kept_prompts[b]):
            assert torch.equal(kept[b, n], refs[b, prompts[b].index(name) if b else n])
    # nothing droppable in one example → nothing dropped anywhere (N stays fixed per batch)
    same, same_prompts = drop_prompts(
        refs, [["a", "a", "b"], ["c", "c", "d"]], 2, np.random.default_rng(0)
    )
    assert same is refs and same_prompts == [["a", "a", "b"], ["c", "c", "d"]]


def tuss_formula(est, ref, mixture, snr_max=30.0, zero_ref_weight=0.1):
    """reference.md §1 for one source, written out: (T,) signals → scalar."""
    tau = 10 ** (-snr_max / 10)
    if ref.pow(2).mean().sqrt() > 1e-8:
        error = (ref - est).pow(2).sum() + tau * ref.pow(2).sum() + 1e-8
        return 10 * torch.log10(error) - 10 * torch.log10(ref.pow(2).sum() + 1e-8)
    return zero_ref_weight * 10 * torch.log10(est.pow(2).sum() + tau * mixture.pow(2).sum() + 1e-7)


def per_example_tuss_loss(est, refs, mixture, prompts):
    """Mean over examples of the best permutation within identical prompts, one example and
    one permutation at a time."""
    import itertools

    total = 0.0
    for b, row in enumerate(prompts):
        candidates = []
        for perm in itertools.permutations(range(len(row))):
            if any(row[p] != row[n] for n, p in enumerate(perm)):
                continue
            values = [tuss_formula(est[b, p], refs[b, n], mixture[b]) for n, p in enumerate(perm)]
            candidates.append(torch.stack(values).mean())
        total = total + min(candidates, key=lambda v: float(v.detach()))
    return total / len(prompts)


def test_objective_equals_a_per_example_loop_with_mixtures_of_different_levels():
    """Each example's silent-reference floor τ‖m‖² uses its own mixture: with one quiet example
    in the batch, its loss and gradients are exactly those of the formula, example by example."""
    torch.manual_seed(0)
    refs = torch.randn(4, 3, 400, dtype=torch.float64)
    refs *= torch.tensor([1.0, 0.01, 3.0, 0.3], dtype=torch.float64)[:, None, None]  # −40…+10 dB
    refs[0, 2] = 0  # silent references, in the loud and in the quiet example
    refs[1, 1] = 0
    refs[3, 0, 200:] = 0  # a source with a silent half stays active
    mixture = refs.sum(1)
    est = refs.flip(1) * 0.5 + 0.05 * torch.randn_like(refs) * refs.std(-1, keepdim=True)
    est[1, 1] = 1e-3 * torch.randn(400)  # an output that should be silent but is not
    prompts = [["speech", "sfx", "speech"], ["sfx", "sfx", "drums"], ["a", "b", "c"], ["x"] * 3]
    batch = {"mixture": mixture, "references": refs, "prompts": prompts}

    model = FixedOutputs(est)
    terms = TUSSObjective(TUSSObjectiveConfig())(model, batch, step=0)
    terms["loss"].backward()

    reference = FixedOutputs(est)
    expected = per_example_tuss_loss(reference.outputs, refs, mixture, prompts)
    expected.backward()
    torch.testing.assert_close(terms["loss"], expected)
    torch.testing.assert_close(model.outputs.grad, reference.outputs.grad)
    assert reference.outputs.grad[1].abs().sum() > 0  # the quiet example is really trained


def test_objective_trains_the_prompt_embeddings_of_a_real_tuss():
    torch.manual_seed(0)
    model = from_preset("tuss-medium", **TINY_SEPARATOR)
    mixture, refs = torch.randn(3, 4000), torch.randn(3, 2, 4000)
    refs[1, 1] = 0
    prompts = [["speech", "sfx"], ["drums", "bass"], ["sfx", "sfx"]]
    terms = TUSSObjective(TUSSObjectiveConfig())(
        model, {"mixture": mixture, "references": refs, "prompts": prompts}, step=0
    )
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"]) and model.prompt_embeddings.grad is not None


def test_prompt_dropout_draws_anew_for_each_micro_batch_of_a_step():
    """Accumulated micro-batches of one step must not all drop the same prompt positions."""
    refs = torch.randn(6, 3, 64)
    prompts = [["speech", "sfx", "drums"]] * 6
    batch = {"mixture": refs.sum(1), "references": refs, "prompts": prompts}
    seen = []

    class Echo(torch.nn.Module):
        def forward(self, mixture, prompts):
            seen.append([tuple(row) for row in prompts])
            return torch.zeros(len(prompts), len(prompts[0]), 64)

    objective = TUSSObjective(TUSSObjectiveConfig(prompt_dropout=1.0))
    for micro in range(3):
        objective(Echo(), batch, step=7, micro=micro)
    objective(Echo(), batch, step=7, micro=0)
    assert seen[3] == seen[0]  # a pure function of (seed, step, micro)
    assert len({tuple(s) for s in seen[:3]}) > 1


@pytest.fixture
def backbone_run(tmp_path, demo_corpus):
    """A pre-training run directory (a couple of real steps) with the fine-tuning geometry."""
    from pretrain.run import main as pretrain

    args = [
        *model_overrides(),
        f"run_dir={tmp_path / 'pretrain'}",
        f"data.corpus.source={demo_corpus / 'unlabeled'}",
        f"data.corpus.cache_dir={tmp_path / 'cache'}",
        "data.clips.sample_rate=8000",
        "data.clips.duration=0.5",
        "data.batch_size=2",
        "data.num_workers=0",
        "train.max_steps=2",
        "stages.0.steps=2",
        "train.val_every=0",
        "validation.manifest=null",
        "validation.mom_batches=1",
    ]
    return pretrain([str(ROOT / "configs" / "demo_pretrain.yaml"), *args])


@pytest.mark.slow
def test_finetuning_from_a_pretraining_run_with_varying_prompt_counts(
    tmp_path, demo_corpus, backbone_run
):
    args = overrides(
        tmp_path, demo_corpus, steps=6, **{"data.dynamic_mixing.num_sources": "[1,2,3]"}
    )
    run = main([CONFIG, "--init", str(backbone_run), *args])
    assert latest_checkpoint(run).name == "ckpt-000000006"
    assert "backbone" in (run / "init.txt").read_text()
    tuss = load_pretrained(run / "model")
    assert isinstance(tuss, TUSS)
    assert tuss(torch.randn(1, 4000), ["speech", "sfx", "sfx"]).shape == (1, 3, 4000)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    counts = {e.value for e in events.Scalars("train/num_prompts")}
    assert len(counts) >= 2, counts  # N changed between batches of one run
    assert "val/si_snri" in events.Tags()["scalars"]


@pytest.mark.slow
def test_finetuning_from_scratch_and_continuing_a_tuss(tmp_path, demo_corpus):
    run = main([CONFIG, *overrides(tmp_path, demo_corpus, steps=2)])
    assert (run / "init.txt").read_text().startswith("random")
    args = overrides(
        tmp_path / "more",
        demo_corpus,
        steps=2,
        **{"model.prompts": "[speech,sfx,sfxbg,drums,bass,vocals,other,musicbg,piano]"},
    )
    again = main([CONFIG, "--init", str(run), *args])
    assert "new prompts ['piano']" in (again / "init.txt").read_text()
    assert load_pretrained(again / "model").config.prompts[-1] == "piano"


def test_an_incompatible_backbone_is_refused_naming_the_field(tmp_path, demo_corpus):
    other = from_preset("backbone-medium", **{**TINY_SEPARATOR, "dim": 24})
    other.save_pretrained(tmp_path / "backbone")
    with pytest.raises(ValueError, match="dim"):
        main([CONFIG, "--init", str(tmp_path / "backbone"), *overrides(tmp_path, demo_corpus)])


def test_classes_without_a_prompt_are_a_clear_error(tmp_path, demo_corpus):
    args = overrides(tmp_path, demo_corpus, **{"model.prompts": "[speech,sfx]"})
    with pytest.raises(ConfigError, match=r"draws classes \['bass'.*no prompt for"):
        main([CONFIG, *args])


def test_a_missing_init_is_a_clear_error(tmp_path, demo_corpus):
    with pytest.raises(ValueError, match="does not exist"):
        main([CONFIG, "--init", str(tmp_path / "nothing"), *overrides(tmp_path, demo_corpus)])


def test_overrides_that_contradict_a_continued_tuss_are_refused_naming_the_field(
    tmp_path, demo_corpus
):
    """--init with a TUSS keeps that TUSS's config; model.overrides may only repeat it."""
    model = from_preset("tuss-medium", **TINY_SEPARATOR)
    model.save_pretrained(tmp_path / "tuss")
    args = overrides(tmp_path, demo_corpus)  # repeats the tiny geometry: accepted as is
    contradicting = [*args, "model.overrides.dim=48"]
    with pytest.raises(ConfigError) as error:
        main([CONFIG, "--init", str(tmp_path / "tuss"), *contradicting])
    assert "dim: the model has 16, overridden to 48" in str(error.value)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"\['width'\] are not TUSSConfig fields"):
        main([CONFIG, "--init", str(tmp_path / "tuss"), *args, "model.overrides.width=3"])


def test_augmentation_acts_on_the_sources_before_they_are_mixed(tmp_path, demo_corpus, monkeypatch):
    """data.augment reaches the fine-tuning batches: a gain of exactly 0.5 halves every
    reference and the mixture stays their sum."""
    seen = {}

    def record(self, model, batch, step, micro=0):
        seen.setdefault(self.tag, []).append({k: batch[k] for k in ("mixture", "references")})
        return {"loss": model.prompt_embeddings.sum() * 0}

    monkeypatch.setattr(TUSSObjective, "forward", record)
    for tag, extra in (("plain", []), ("halved", ["data.augment.scale=[0.5,0.5]"])):
        monkeypatch.setattr(TUSSObjective, "tag", tag, raising=False)
        args = overrides(tmp_path / tag, demo_corpus, steps=1, **{"validation.manifest": "null"})
        main([CONFIG, *args, *extra])
    plain, halved = seen["plain"][0], seen["halved"][0]
    torch.testing.assert_close(halved["references"], 0.5 * plain["references"])
    torch.testing.assert_close(halved["mixture"], halved["references"].sum(1))
