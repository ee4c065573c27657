"""The shipped demo configs run as they are on the `--small` demo corpus the tests use (only
the run directory, the step count, the cache and worker count are overridden)."""

from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PRETRAIN = ("demo_pretrain.yaml", "demo_gass.yaml", "demo_semisup_mixit.yaml", "demo_demucs.yaml")


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
    if name == "demo_demucs.yaml":  # its held-out tracks: `python -m wildsep.data.demo --stems`
        from wildsep.data.demo import generate_stems

        stems = generate_stems(tmp_path / "stems", tracks={"valid": 1}, seconds=1.0)
        monkeypatch.setenv("WILDSEP_DEMO_STEMS", str(stems))
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
