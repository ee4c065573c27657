"""The README's main command: the whole pipeline on the demo corpus (tiny settings here)."""

import pytest

from wildsep.quickstart import main

TINY = [
    "train.max_steps=2",
    "train.val_every=0",
    "train.checkpoint_every=2",
    "train.average_last=0",
    "data.num_workers=0",
    "data.batch_size=2",
    "data.clips.duration=0.5",
    "validation.max_examples=1",
]


@pytest.mark.slow
def test_quickstart_runs_the_whole_pipeline(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WILDSEP_CACHE", str(tmp_path / "cache"))
    overrides = [f"pretrain.{o}" for o in [*TINY, "stages.0.steps=2", "validation.mom_batches=1"]]
    overrides += [f"finetune.{o}" for o in TINY]
    result = main(
        ["--small", "--data", str(tmp_path / "demo"), "--runs", str(tmp_path / "runs"), *overrides]
    )
    assert result["kind"] == "prompted" and result["summary"]["overall"]["sources"] > 0
    separated = list((tmp_path / "runs" / "demo_separated").rglob("*.wav"))
    assert len(separated) >= 2
    assert (tmp_path / "runs" / "demo_tuss" / "eval_test" / "metrics.md").is_file()
    out = capsys.readouterr().out
    for step in (
        "pretrain/run.py",
        "finetune/tuss.py configs/demo_tuss.yaml --init",
        "wildsep separate",
        "wildsep.evaluate",
    ):
        assert step in out
