"""The run directory guard: a run writes only into folders it created, resumes only what it
can resume, and says exactly why when it refuses."""

import hashlib
import json
from pathlib import Path

import pytest

from pretrain.run import main
from tests.pretrain.test_run import CONFIG, overrides
from wildsep.config import ConfigError


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def args(tmp_path, corpus, run_dir, steps=2, *extra):
    base = overrides(tmp_path, corpus, steps=steps, **{"validation.manifest": "null"})
    return [CONFIG, *base, f"run_dir={run_dir}", "train.val_every=0", *extra]


@pytest.mark.parametrize("kind", ["corpus", "home", "file"])
def test_a_foreign_folder_is_refused_untouched(tmp_path, demo_corpus, kind):
    target = tmp_path / "users_folder"
    if kind == "corpus":  # e.g. run_dir pointed at the training data itself
        import shutil

        shutil.copytree(demo_corpus / "unlabeled", target)
    elif kind == "home":
        target.mkdir()
        (target / "config.yaml").write_text("my own settings\n")
        (target / "notes.txt").write_text("keep me\n")
    else:
        target.write_text("a file\n")
    before = snapshot(target) if target.is_dir() else target.read_text()
    with pytest.raises(ConfigError) as error:
        main(args(tmp_path, demo_corpus, target))
    assert "\n" not in str(error.value) and str(target) in str(error.value)
    after = snapshot(target) if target.is_dir() else target.read_text()
    assert after == before


def test_an_empty_folder_becomes_a_run_directory_with_a_marker(tmp_path, demo_corpus):
    run_dir = tmp_path / "empty"
    run_dir.mkdir()
    main(args(tmp_path, demo_corpus, run_dir))
    marker = json.loads((run_dir / "wildsep-run.json").read_text())
    assert marker["recipe"] == "pretrain" and marker["seed"] == 0 and "created" in marker


@pytest.mark.slow
def test_resuming_with_changed_settings_needs_an_opt_in_and_keeps_the_old_config(
    tmp_path, demo_corpus
):
    run_dir = tmp_path / "run"
    main(args(tmp_path, demo_corpus, run_dir, 2))
    original = (run_dir / "config.yaml").read_text()

    # more steps and another logging interval: free to change
    main(args(tmp_path, demo_corpus, run_dir, 3, "train.log_every=2"))

    changed = args(tmp_path, demo_corpus, run_dir, 4, "train.optim.lr=0.01", "data.seed=5")
    with pytest.raises(ConfigError) as error:
        main(changed)
    message = str(error.value)
    assert "\n" not in message and "allow_changes" in message
    assert "train.optim.lr: 0.001 → 0.01" in message and "data.seed: 0 → 5" in message
    assert "max_steps" not in message  # free changes are not listed
    assert sorted(p.name for p in run_dir.glob("ckpt-*")) == ["ckpt-000000002", "ckpt-000000003"]

    main([*changed, "train.allow_changes=true"])
    kept = sorted(p.name for p in run_dir.glob("config.previous-*.yaml"))
    assert kept == ["config.previous-000000002.yaml", "config.previous-000000003.yaml"]
    assert (run_dir / "config.previous-000000002.yaml").read_text() == original
    assert "lr: 0.01" in (run_dir / "config.yaml").read_text()


@pytest.mark.slow
def test_another_model_or_recipe_in_a_run_directory_is_refused_naming_the_fields(
    tmp_path, demo_corpus
):
    run_dir = tmp_path / "run"
    main(args(tmp_path, demo_corpus, run_dir))
    before = snapshot(run_dir)
    with pytest.raises(ConfigError) as error:
        main(args(tmp_path, demo_corpus, run_dir, 2, "model.overrides.dim=32"))
    message = str(error.value)
    assert "\n" not in message and "model.overrides.dim: 16 → 32" in message
    assert len(message) < 400  # the differing field, not the whole model section

    from finetune.tuss import main as finetune

    with pytest.raises(ConfigError, match="holds a pretrain run, not a finetune run"):
        finetune(
            [
                f"run_dir={run_dir}",
                f"data.pools.source={demo_corpus / 'pools'}",
                "train.precision=no",
            ]
        )
    assert snapshot(run_dir) == before
