"""The shipped demo configs run as they are on the `--small` demo corpus the tests use (only
the run directory, the step count, the cache and worker count are overridden)."""

from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PRETRAIN = ("demo_pretrain.yaml", "demo_gass.yaml", "demo_semisup_mixit.yaml")


def recipe(name):
    if name in PRETRAIN:
        from pretrain.run import main

        return main, ["stages.0.steps=1"]
    if name == "demo_tuss.yaml":
        from finetune.tuss import main

        return main, []
    from pretrain.presence import main

    return main, []


@pytest.mark.slow
@pytest.mark.parametrize("name", [*PRETRAIN, "demo_tuss.yaml", "demo_presence.yaml"])
def test_demo_config_trains_on_the_small_corpus(name, demo_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("WILDSEP_DEMO", str(demo_corpus))
    main, extra = recipe(name)
    cache = f"cache_dir={tmp_path / 'cache'}"
    run = main(
        [
            str(CONFIGS / name),
            f"run_dir={tmp_path / 'run'}",
            "train.max_steps=1",
            "data.num_workers=0",
            f"data.corpus.{cache}",
            f"data.pools.{cache}",
            *extra,
        ]
    )
    assert (run / "model" / "config.json").is_file()
