"""Configs load from YAML like users expect: tables replace the built-in ones, wrong keys and
values fail at start naming the key, and the YAML example in docs/data.md is valid."""

import re
from pathlib import Path

import pytest

from wildsep.data import DataConfig, load_data_config

DOCS = Path(__file__).resolve().parents[2] / "docs" / "data.md"


def test_yaml_tables_replace_the_built_in_ones(tmp_path: Path) -> None:
    path = tmp_path / "data.yaml"
    path.write_text(
        "dynamic_mixing:\n"
        "  num_sources: [2, 3]\n"
        "  prompts:\n"
        "    initial: {speech: 1.0}\n"
        "    transitions: {speech: {speech: 1.0}}\n"
        "  gain_db: {speech: [-5, 0]}\n"
        "clips: {duration: 6}\n"
    )
    config = load_data_config(path, ["batch_size=8"])
    mixing = config.dynamic_mixing.resolved()
    assert mixing.prompts.initial == {"speech": 1.0} and mixing.gain_db == {"speech": [-5.0, 0.0]}
    assert mixing.num_sources == [2, 3] and mixing.prompts.max_appearances == {}
    assert config.clips.duration == 6.0 and config.batch_size == 8
    assert isinstance(load_data_config(), DataConfig)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"clips": {"durtion": 3}}, "durtion"),
        ({"clips": {"channels": "left"}}, "choose from"),
        ({"dynamic_mixing": {"num_sources_weights": [1.0]}}, "num_sources_weights"),
        ({"dynamic_mixing": {"prompts": {"initial": {"kazoo": 1.0}}}}, "no row for"),
        ({"dynamic_mixing": {"gain_db": {"speech": [0, -10]}}}, "low <= high"),
        ({"augment": {"flip_sign_prob": 2.0}}, "flip_sign_prob"),
    ],
)
def test_bad_keys_and_values_fail_at_start(override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_data_config(override)


def test_docs_yaml_example_is_valid(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert blocks, "docs/data.md should show a YAML data config"
    for block in blocks:
        path = tmp_path / "example.yaml"
        path.write_text(block)
        config = load_data_config(path)
        assert config.dynamic_mixing.resolved().prompts.transitions
