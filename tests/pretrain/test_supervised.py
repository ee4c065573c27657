"""Supervised (GASS) and semi-supervised MixIT pre-training end to end on the tiny demo corpus:
data, refusal at load, training, exact resume, export and TUSS initialisation."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pretrain.run import main
from tests.tiny import model_overrides, pretrain_overrides
from wildsep.config import ConfigError
from wildsep.engine import latest_checkpoint
from wildsep.models import Backbone, load_pretrained

ROOT = Path(__file__).resolve().parents[2]
GASS = str(ROOT / "configs" / "demo_gass.yaml")
SEMISUP = str(ROOT / "configs" / "demo_semisup_mixit.yaml")


def overrides(tmp_path: Path, corpus: Path, steps: int = 3, **extra: object) -> list[str]:
    """The pre-training test overrides plus the labeled pools and the single-source set."""
    pools = {
        "data.pools.source": corpus / "pools",
        "data.pools.cache_dir": tmp_path / "cache",
        "validation.single_manifest": corpus / "valid" / "single.jsonl",
    }
    return pretrain_overrides(tmp_path, corpus, steps, **{**pools, **extra})


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in records(run) if "loss" in r}


def initialise_tuss(run: Path, tmp_path: Path, corpus: Path) -> None:
    """One fine-tuning step of the demo TUSS initialised from the run's export."""
    from finetune.tuss import main as finetune

    tuned = finetune(
        [
            str(ROOT / "configs" / "demo_tuss.yaml"),
            "--init",
            str(run),
            *model_overrides(),
            f"run_dir={tmp_path / 'tuss'}",
            f"data.pools.source={corpus / 'pools'}",
            f"data.pools.cache_dir={tmp_path / 'cache'}",
            "data.batch_size=2",
            "data.num_workers=0",
            "data.clips.duration=0.5",
            "train.max_steps=1",
            "validation.manifest=null",
        ]
    )
    assert (tuned / "init.txt").read_text().startswith(f"backbone {run / 'model'}")


@pytest.mark.slow
def test_supervised_pretraining_trains_resumes_exports_and_initialises_tuss(tmp_path, demo_corpus):
    args = overrides(tmp_path, demo_corpus, **{"data.corpus.source": "''"})  # no corpus needed
    run = main([GASS, *args])
    assert latest_checkpoint(run).name == "ckpt-000000003"
    validation = next(r for r in records(run) if "val/loss" in r)
    assert validation["val/loss"] == validation["val/supervised_loss"]  # no MoMs: supervised
    assert {"val/si_snri/3_sources", "val/single_source_si_snr"} <= set(validation)
    assert any(k.startswith("val/si_snri/") and "sources" not in k for k in validation)
    run = main([GASS, *overrides(tmp_path, demo_corpus, steps=5, **{"data.corpus.source": "''"})])
    assert latest_checkpoint(run).name == "ckpt-000000005"
    model = load_pretrained(run / "model")
    assert isinstance(model, Backbone) and model(torch.randn(2, 4000)).shape == (2, 4, 4000)

    initialise_tuss(run, tmp_path, demo_corpus)


@pytest.mark.slow
def test_semisupervised_mixit_resumed_equals_uninterrupted_and_exports(tmp_path, demo_corpus):
    """Interleaved at 1/2: steps 1, 3 MoM, steps 2, 4 supervised; a run stopped at step 2
    and continued to 4 logs the same losses and ends with the same weights."""
    straight = main([SEMISUP, *overrides(tmp_path / "a", demo_corpus, steps=4)])
    kinds = [r["supervised_batches"] for r in records(straight) if "supervised_batches" in r]
    assert kinds == [0.0, 1.0, 0.0, 1.0]
    main([SEMISUP, *overrides(tmp_path / "b", demo_corpus, steps=2)])
    resumed = main([SEMISUP, *overrides(tmp_path / "b", demo_corpus, steps=4)])
    assert losses(resumed) == pytest.approx(losses(straight), rel=1e-6, abs=1e-7)
    final = load_file(resumed / "model" / "model.safetensors")
    for name, value in load_file(straight / "model" / "model.safetensors").items():
        assert torch.equal(final[name], value), name
    assert isinstance(load_pretrained(straight / "model"), Backbone)


@pytest.mark.slow
def test_semisupervised_mixit_sum_mode_logs_both_losses_every_step(tmp_path, demo_corpus):
    run = main(
        [SEMISUP, *overrides(tmp_path, demo_corpus, 2, **{"stages.0.semisup_mixit.mode": "sum"})]
    )
    steps = [r for r in records(run) if "lr" in r]
    assert len(steps) == 2 and all("mixit" in r and "supervised" in r for r in steps)
    initialise_tuss(run, tmp_path, demo_corpus)


def load(tmp_path, corpus, config, *extra):
    from pretrain.config import PretrainConfig
    from wildsep.config import load_config

    return load_config(PretrainConfig, config, [*overrides(tmp_path, corpus), *extra])


def test_semisup_mixit_batches_interleave_the_two_loaders_by_position(tmp_path, demo_corpus):
    """Ratio 1/3: positions 2, 5, 8 are dynamic mixtures of the pools (1-4 sources), the others
    mixtures of mixtures; a source positioned anywhere continues exactly."""
    from pretrain.run import training_batches
    from wildsep.data import build_corpus_index

    config = load(
        tmp_path, demo_corpus, SEMISUP, "stages.0.semisup_mixit.supervised_ratio=0.3333333333"
    )
    index, pools = build_corpus_index(config.data.corpus), build_corpus_index(config.data.pools)
    batches = [
        b for b, _ in zip(training_batches(config, index, 0, 1, pools)(0), range(9), strict=False)
    ]
    for position, batch in enumerate(batches):
        torch.testing.assert_close(batch["mixture"], batch["references"].sum(1))
        if position % 3 == 2:
            assert batch["kind"] == "supervised" and 1 <= batch["references"].shape[1] <= 4
            assert len(batch["prompts"]) == config.data.batch_size
        else:
            assert batch["kind"] == "mom" and batch["references"].shape[1] == 2
    for start in (4, 5):
        again = next(training_batches(config, index, 0, 1, pools)(start))
        torch.testing.assert_close(again["references"], batches[start]["references"])


def test_more_sources_than_outputs_or_no_pools_is_refused_when_the_config_loads(
    tmp_path, demo_corpus
):
    args = overrides(tmp_path, demo_corpus)
    with pytest.raises(ConfigError, match=r"up to 5 sources but the model has 4 outputs"):
        main([GASS, *args, "data.dynamic_mixing.num_sources=[1,5]"])
    with pytest.raises(ConfigError, match=r"data\.pools\.source"):
        main([SEMISUP, *args, "data.pools.source=''"])
    with pytest.raises(ConfigError, match=r"data\.corpus\.source"):
        main([SEMISUP, *args, "data.corpus.source=''"])
    assert not (tmp_path / "run").exists()
