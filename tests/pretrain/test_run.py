"""The pre-training recipe end to end on the tiny demo corpus (CPU)."""

import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch

from pretrain.run import main
from tests.tiny import pretrain_overrides
from wildsep.config import ConfigError
from wildsep.engine import latest_checkpoint
from wildsep.models import Backbone, load_pretrained

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs" / "demo_pretrain.yaml")


def overrides(tmp_path: Path, corpus: Path, steps: int = 3, **extra: object) -> list[str]:
    return pretrain_overrides(tmp_path, corpus, steps, **{"data.clips.sample_rate": 8000, **extra})


@pytest.mark.slow
def test_pretraining_runs_exports_a_backbone_and_resumes(tmp_path, demo_corpus):
    run = main([CONFIG, *overrides(tmp_path, demo_corpus)])
    assert latest_checkpoint(run).name == "ckpt-000000003"
    model = load_pretrained(run / "model")
    assert isinstance(model, Backbone) and model.config.n_outputs == 8  # the config's M
    assert model(torch.randn(2, 4000)).shape == (2, 8, 4000)
    events = list((run / "tensorboard").glob("events.*"))
    assert events and events[0].stat().st_size > 0
    assert (run / "config.yaml").read_text().count("sample_rate: 8000") >= 2

    # more steps on the same run directory continue from the checkpoint
    run = main([CONFIG, *overrides(tmp_path, demo_corpus, steps=5)])
    assert latest_checkpoint(run).name == "ckpt-000000005"


@pytest.mark.slow
def test_curriculum_mixit_then_self_remixing(tmp_path, demo_corpus):
    stages = {
        "stages": "[{name: mixit, objective: mixit, steps: 2}, "
        "{name: remix, objective: remixing, steps: 2, remixing: {ema_every: 1, num_sources: 4}}]"
    }
    args = overrides(tmp_path, demo_corpus, steps=4)
    run = main([CONFIG, *args, *[f"{k}={v}" for k, v in stages.items()]])
    assert latest_checkpoint(run).name == "ckpt-000000004"
    extra = latest_checkpoint(run) / "extra.safetensors"
    assert extra.is_file()  # the EMA teacher is part of the checkpoint


@pytest.mark.slow
def test_a_corpus_with_broken_files_trains_and_reports_them(tmp_path, demo_corpus):
    corpus = tmp_path / "corpus"
    shutil.copytree(demo_corpus / "unlabeled", corpus / "unlabeled")
    (corpus / "unlabeled" / "empty.wav").write_bytes(b"")
    (corpus / "unlabeled" / "notes.wav").write_text("not audio")
    nan = torch.full((4000,), float("nan")).numpy()
    sf.write(corpus / "unlabeled" / "nan.wav", nan, 8000, subtype="FLOAT")
    before = sorted(p.name for p in (corpus / "unlabeled").iterdir())
    run = main([CONFIG, *overrides(tmp_path, corpus, steps=2, **{"validation.manifest": "null"})])
    report = (run / "skipped_files.csv").read_text()
    assert sorted(line.split(",")[0].rsplit("/", 1)[-1] for line in report.splitlines()[1:]) == [
        "empty.wav",
        "nan.wav",
        "notes.wav",
    ]
    assert sorted(p.name for p in (corpus / "unlabeled").iterdir()) == before  # nothing written


def test_a_bad_config_key_fails_before_any_data_is_read(tmp_path):
    missing = tmp_path / "does-not-exist"
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        main([CONFIG, f"data.corpus.source={missing}", "train.optim.lrr=1"])
    assert not (tmp_path / "cache").exists()


def test_a_missing_corpus_is_a_clear_error(tmp_path):
    missing = tmp_path / "nowhere"
    args = overrides(tmp_path, missing, **{"validation.manifest": "null"})
    with pytest.raises(FileNotFoundError, match="nowhere"):
        main([CONFIG, *args])


def test_sample_rate_mismatch_is_a_clear_error(tmp_path, demo_corpus):
    args = [*overrides(tmp_path, demo_corpus), "data.clips.sample_rate=16000"]
    with pytest.raises(ConfigError, match="sample_rate"):
        main([CONFIG, *args])


@pytest.mark.slow
def test_sigterm_to_the_whole_process_group_checkpoints_with_data_workers(tmp_path, demo_corpus):
    """Schedulers signal every process of a job; the data workers must not die first."""
    import os
    import signal
    import subprocess
    import sys
    import time

    args = overrides(
        tmp_path,
        demo_corpus,
        steps=10_000,
        **{"data.num_workers": 2, "validation.manifest": "null", "train.val_every": 0},
    )
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "pretrain" / "run.py"), CONFIG, *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a scheduler's job
    )
    deadline = time.time() + 240
    while latest_checkpoint(tmp_path / "run") is None:
        assert time.time() < deadline and proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    assert "run again to resume" in stderr
    assert int(latest_checkpoint(tmp_path / "run").name.split("-")[1]) >= 2


def load(tmp_path, corpus, *extra):
    from pretrain.config import PretrainConfig
    from wildsep.config import load_config

    return load_config(PretrainConfig, CONFIG, [*overrides(tmp_path, corpus), *extra])


def test_self_remixing_stages_read_single_mixtures_and_mixit_stages_mixtures_of_mixtures(
    tmp_path, demo_corpus
):
    """A MixIT → Self-Remixing curriculum switches its data source with the stage: the teacher
    separates single in-the-wild clips x, not x₁ + x₂ (reference §4)."""
    from pretrain.run import training_batches
    from wildsep.data import ClipDataset, build_corpus_index

    config = load(
        tmp_path,
        demo_corpus,
        "stages=[{name: mixit, objective: mixit, steps: 2}, "
        "{name: remix, objective: remixing, steps: 3}]",
        "train.grad_accum=2",
    )
    index = build_corpus_index(config.data.corpus)
    batches = list(zip(range(10), training_batches(config, index, 0, 1)(0), strict=False))
    clips = ClipDataset(index, config.data.clips, seed=config.data.seed)
    per_epoch = len(clips) // config.data.batch_size
    for position, batch in batches:
        if position < 4:  # 2 MixIT steps × 2 micro-batches: pairs of clips and their sum
            assert batch["references"].shape[1] == 2
            torch.testing.assert_close(batch["mixture"], batch["references"].sum(1))
            continue
        assert "references" not in batch
        epoch, step = divmod(position, per_epoch)
        keys = [step * config.data.batch_size + j for j in range(config.data.batch_size)]
        expected = torch.stack([torch.from_numpy(clips.draw(epoch, k)[0]) for k in keys])
        torch.testing.assert_close(batch["mixture"], expected)
    # resuming at a position inside the second stage gives the same batches
    resumed = training_batches(config, index, 0, 1)(7)
    torch.testing.assert_close(next(resumed)["mixture"], batches[7][1]["mixture"])


def test_a_remixing_stage_that_cannot_run_is_refused_when_the_config_loads(tmp_path):
    """configs/mixit_yfcc.yaml (batch 4, M = 8) plus a Self-Remixing stage: the constrained
    shuffle needs 8 mixtures per batch. Refused before any data is read."""
    stages = (
        "stages=[{name: mixit, objective: mixit, steps: 10}, "
        "{name: remix, objective: remixing, steps: 10}]"
    )
    yfcc = str(ROOT / "configs" / "mixit_yfcc.yaml")
    corpus = f"data.corpus.source={tmp_path / 'nowhere'}"
    with pytest.raises(ConfigError, match=r"stages\.1 \(remix\).*data\.batch_size=4"):
        main([yfcc, corpus, stages, f"run_dir={tmp_path / 'run'}"])
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="num_sources=9"):
        main([yfcc, corpus, stages, "stages.1.remixing.num_sources=9"])


@pytest.mark.parametrize(
    "override", ["train.max_steps=0", "stages.0.steps=0", "train.grad_accum=0"]
)
def test_a_config_that_would_train_nothing_is_refused(tmp_path, demo_corpus, override):
    with pytest.raises(ConfigError, match=">= 1"):
        main([CONFIG, *overrides(tmp_path, demo_corpus), override])
    assert not (tmp_path / "run").exists()


def test_augmentation_changes_the_training_batches_of_every_stage(tmp_path, demo_corpus):
    """data.augment acts on the clips before they are mixed (MixIT) and on single mixtures
    (Self-Remixing): a sign flip with probability 1 negates every clip; a gain of exactly 0.5
    halves it."""
    from pretrain.run import training_batches
    from wildsep.data import build_corpus_index

    stages = (
        "stages=[{name: mixit, objective: mixit, steps: 1}, "
        "{name: remix, objective: remixing, steps: 1}]"
    )
    plain = load(tmp_path, demo_corpus, stages)
    flipped = load(tmp_path, demo_corpus, stages, "data.augment.flip_sign_prob=1.0")
    halved = load(tmp_path, demo_corpus, stages, "data.augment.scale=[0.5,0.5]")
    index = build_corpus_index(plain.data.corpus)
    take = [
        list(zip(range(2), training_batches(c, index, 0, 1)(0), strict=False))
        for c in (plain, flipped, halved)
    ]
    for (_, a), (_, b), (_, c) in zip(*take, strict=True):
        for key in a:
            torch.testing.assert_close(b[key], -a[key])
            torch.testing.assert_close(c[key], 0.5 * a[key])


@pytest.mark.slow
def test_the_same_command_twice_gives_the_same_losses_and_weights(tmp_path, demo_corpus):
    """Model initialisation, data (with a worker process), objectives: all seeded from the
    config. A different train.seed changes the initial weights, and the seed is recorded."""
    import json

    from safetensors.torch import load_file

    def run(name, *extra):
        args = overrides(tmp_path, demo_corpus, steps=3, **{"data.num_workers": 1})
        return main([CONFIG, *args, f"run_dir={tmp_path / name}", "train.val_every=0", *extra])

    def losses(run_dir):
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        return [r["loss"] for r in map(json.loads, lines) if "loss" in r]

    first, second = run("first"), run("second")
    assert losses(first) == losses(second) and len(losses(first)) == 3
    weights = [load_file(r / "model" / "model.safetensors") for r in (first, second)]
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), name
    other = run("other", "train.seed=1")
    assert losses(other)[0] != losses(first)[0]  # another initialisation
    assert json.loads((other / "wildsep-run.json").read_text())["seed"] == 1
