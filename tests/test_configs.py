"""Every shipped config loads against its schema; the Accelerate launch configs parse."""

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

from finetune.config import FinetuneConfig
from pretrain.config import PretrainConfig
from pretrain.presence import PresenceRecipeConfig
from wildsep.config import load_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
SCHEMAS = {
    "demo_pretrain.yaml": PretrainConfig,
    "mixit_yfcc.yaml": PretrainConfig,
    "gass.yaml": PretrainConfig,
    "demo_gass.yaml": PretrainConfig,
    "demo_semisup_mixit.yaml": PretrainConfig,
    "demo_demucs.yaml": PretrainConfig,
    "demucs_musdb.yaml": PretrainConfig,
    "demo_tuss.yaml": FinetuneConfig,
    "tuss_medium.yaml": FinetuneConfig,
    "demo_presence.yaml": PresenceRecipeConfig,
    "demo_semisup.yaml": FinetuneConfig,
    "realaudio/pretrain.yaml": PretrainConfig,
    "realaudio/gass.yaml": PretrainConfig,
    "realaudio/semisup_mixit.yaml": PretrainConfig,
    "realaudio/classifier.yaml": PresenceRecipeConfig,
    "realaudio/tuss.yaml": FinetuneConfig,
}


def test_every_recipe_config_has_a_schema():
    found = [
        str(p.relative_to(CONFIGS))
        for p in CONFIGS.rglob("*.yaml")
        if p.parent.name != "accelerate"
    ]
    assert sorted(found) == sorted(SCHEMAS)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_config_loads(name, monkeypatch):
    monkeypatch.setenv("WILDSEP_CORPUS", "/data/corpus")
    monkeypatch.setenv("WILDSEP_POOLS", "/data/pools")
    config = load_config(SCHEMAS[name], CONFIGS / name)
    assert config.train.max_steps > 0


def test_mixit_yfcc_matches_the_tuss_medium_geometry(monkeypatch):
    from wildsep.models import preset_config

    monkeypatch.setenv("WILDSEP_CORPUS", "/data/corpus")
    config = load_config(PretrainConfig, CONFIGS / "mixit_yfcc.yaml")
    backbone = preset_config(config.model.preset, **config.model.overrides)
    assert backbone.geometry() == preset_config("tuss-medium").geometry()
    assert backbone.n_outputs == 8 and config.stages[0].mixit.method.value == "exact"
    assert config.data.clips.sample_rate == backbone.sample_rate


@pytest.mark.parametrize(
    "name", ["mixit_yfcc.yaml", "demo_pretrain.yaml", "realaudio/pretrain.yaml"]
)
def test_mixit_configs_use_the_measured_defaults_at_full_weight_before_the_end(name, monkeypatch):
    """The best rows of docs/results.md: M = 8, L_p sparsity ramped in over the second quarter
    of the run (so it is at full weight for the second half), no covariance term."""
    from wildsep.models import preset_config

    monkeypatch.setenv("WILDSEP_CORPUS", "/data/corpus")
    config = load_config(PretrainConfig, CONFIGS / name)
    stage = config.stages[0]
    assert preset_config(config.model.preset, **config.model.overrides).n_outputs == 8
    assert stage.mixit.sparsity.value == "lp" and stage.mixit.sparsity_p == 0.5
    assert stage.mixit.sparsity_weight > 0 and stage.mixit.covariance_weight == 0
    assert stage.mixit.sparsity_at(stage.steps // 2) == stage.mixit.sparsity_weight
    assert stage.mixit.sparsity_at(stage.steps // 4 - 1) == 0


@pytest.mark.parametrize(
    "pretrain,finetune",
    [
        ("mixit_yfcc.yaml", "tuss_medium.yaml"),
        ("demo_pretrain.yaml", "demo_tuss.yaml"),
        ("gass.yaml", "tuss_medium.yaml"),
        ("demo_gass.yaml", "demo_tuss.yaml"),
        ("demo_semisup_mixit.yaml", "demo_tuss.yaml"),
        ("realaudio/pretrain.yaml", "realaudio/tuss.yaml"),
    ],
)
def test_pretraining_configs_initialise_their_finetuning_configs(pretrain, finetune, monkeypatch):
    from wildsep.models import preset_config

    monkeypatch.setenv("WILDSEP_CORPUS", "/data/corpus")
    monkeypatch.setenv("WILDSEP_POOLS", "/data/pools")
    backbone = load_config(PretrainConfig, CONFIGS / pretrain).model
    tuss = load_config(FinetuneConfig, CONFIGS / finetune).model
    geometry = preset_config(backbone.preset, **backbone.overrides).geometry()
    assert geometry == preset_config(tuss.preset, **tuss.overrides).geometry()


def test_gass_is_supervised_on_one_to_four_sources_at_the_tuss_medium_geometry(monkeypatch):
    from pretrain.config import check_stages
    from wildsep.models import preset_config

    monkeypatch.setenv("WILDSEP_POOLS", "/data/pools")
    config = load_config(PretrainConfig, CONFIGS / "gass.yaml")
    check_stages(config)  # pools only: no unlabeled corpus needed
    backbone = preset_config(config.model.preset, **config.model.overrides)
    assert backbone.geometry() == preset_config("tuss-medium").geometry()
    assert [s.objective.value for s in config.stages] == ["supervised"]
    assert (
        config.data.dynamic_mixing.num_sources
        == [1, 2, 3, 4]
        == list(range(1, backbone.n_outputs + 1))
    )
    assert config.data.clips.sample_rate == backbone.sample_rate


def test_mixit_yfcc_without_a_corpus_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("WILDSEP_CORPUS", raising=False)
    with pytest.raises(ValueError, match=r"WILDSEP_CORPUS.*data\.corpus\.source="):
        load_config(PretrainConfig, CONFIGS / "mixit_yfcc.yaml")


@pytest.mark.parametrize(
    "path", sorted((CONFIGS / "accelerate").glob("*.yaml")), ids=lambda p: p.name
)
def test_accelerate_config_parses_and_leaves_the_process_count_to_the_command_line(path):
    config = load_config_from_file(str(path))
    assert config.mixed_precision == "bf16"
    text = path.read_text()
    if config.distributed_type.value == "NO":
        assert config.num_processes == 1
    else:  # the machine count and rank are the launcher's too (one file for every cluster)
        assert config.num_processes == -1 and "num_processes:" not in text
        assert "num_machines:" not in text and "machine_rank:" not in text
    if config.distributed_type.value == "DEEPSPEED":  # the training config owns these
        assert not {"gradient_accumulation_steps", "gradient_clipping"} & set(
            config.deepspeed_config
        )


def test_command_line_no_yes_on_off_are_strings_for_choices_and_booleans_for_flags():
    """YAML 1.1 would read `train.precision=no` as False and reject it."""
    from pretrain.config import PretrainConfig

    config = load_config(
        PretrainConfig, None, ["train.precision=no", "train.resume=no", "data.drop_last=off"]
    )
    assert config.train.precision.value == "no"
    assert config.train.resume is False and config.data.drop_last is False


def test_demucs_musdb_is_the_paper_setup_and_passes_the_start_up_checks(monkeypatch):
    from pretrain.config import check_stages
    from wildsep.models import PAPER_PARAMETERS, from_preset

    monkeypatch.setenv("WILDSEP_MUSDB", "/data/musdb18hq")
    config = load_config(PretrainConfig, CONFIGS / "demucs_musdb.yaml")
    check_stages(config)  # stereo clips for a stereo model, one output per stem in order
    model = from_preset(config.model.preset, **config.model.overrides)
    count = sum(p.numel() for p in model.parameters())
    assert count == pytest.approx(PAPER_PARAMETERS["demucs"], rel=0.03)
    assert config.data.stems.source == "/data/musdb18hq/train"
    assert config.stages[0].stems.loss.value == "l1" and config.data.augment.remix_group_size == 4
    # the 1 s shift trims the 11 s crops to Demucs's 10 s
    assert config.data.clips.duration - config.data.augment.shift_seconds == 10.0
