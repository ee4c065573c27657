"""A damaged exported model is one line of error, never a traceback, wherever it is given:
`wildsep separate --model`, `wildsep evaluate`, `finetune/tuss.py --init` and pre-training's
`model.init` — and the folder is left exactly as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from finetune.tuss import main as finetune
from pretrain.run import main as pretrain
from tests.tiny import model_overrides
from wildsep.cli import main as wildsep
from wildsep.engine import run_recipe

ROOT = Path(__file__).resolve().parents[2]


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def edit_config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        meta = json.loads(path.read_text())
        change(meta)
        path.write_text(json.dumps(meta))

    return apply


# kind → (file, damage, what the one line must say)
DAMAGE: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "truncated weights": ("model.safetensors", truncate, "model.safetensors is truncated ("),
    "garbage weights": (
        "model.safetensors",
        lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
        "model.safetensors is not a safetensors file",
    ),
    "missing weights": ("model.safetensors", Path.unlink, "model.safetensors is missing"),
    "truncated config": ("config.json", truncate, "config.json is truncated or not valid JSON"),
    "unknown class": (
        "config.json",
        edit_config(lambda m: m.update({"class": "Nope"})),
        "unknown model class 'Nope'",
    ),
    "unknown field": (
        "config.json",
        edit_config(lambda m: m["config"].update({"colour": "red"})),
        "Config fields ['colour']",
    ),
    "invalid value": (
        "config.json",
        edit_config(lambda m: m["config"].update({"encoder": "nope"})),
        "Config (encoder must be one of",
    ),
    "weights of another size": (
        "config.json",
        edit_config(lambda m: m["config"].update({"dim": 24})),
        "model.safetensors does not fit the",
    ),
}


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(root.rglob("*"))
    }


def damaged(source: Path, kind: str, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(source, folder)
    name, damage, _ = DAMAGE[kind]
    damage(folder / name)
    return folder


def one_line(text: str, expected: str) -> None:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert expected in lines[0] and "Traceback" not in text, text


def command_args(command: str, model: Path, tmp_path: Path) -> list[str]:
    if command == "evaluate":
        return ["evaluate", str(model), "--set", str(tmp_path / "set.jsonl")]
    clip = tmp_path / "clip.wav"
    sf.write(str(clip), np.zeros(800, dtype=np.float32) + 0.1, 8000)
    out = str(tmp_path / "out")
    return ["separate", str(clip), "--model", str(model), "--prompts", "speech", "--out", out]


@pytest.mark.parametrize("kind", list(DAMAGE))
@pytest.mark.parametrize("command", ["separate", "evaluate"])
def test_cli_reports_a_damaged_model_in_one_line(
    command: str, kind: str, tuss_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = damaged(tuss_dir, kind, tmp_path)
    before = digest(model)
    assert wildsep(command_args(command, model, tmp_path)) == 2
    err = capsys.readouterr().err
    one_line(err, DAMAGE[kind][2])
    assert err.startswith("wildsep: error: ")
    # nothing written: no outputs, not even evaluate's eval_* folder inside the model folder
    assert digest(model) == before and not (tmp_path / "out").exists()


def recipe_args(recipe: str, model: Path, run_dir: Path) -> list[str]:
    if recipe == "finetune --init":
        config = str(ROOT / "configs" / "demo_tuss.yaml")
        return [config, "--init", str(model), *model_overrides(), f"run_dir={run_dir}"]
    config = str(ROOT / "configs" / "demo_pretrain.yaml")
    rate = "data.clips.sample_rate=8000"
    return [config, *model_overrides(), rate, f"model.init={model}", f"run_dir={run_dir}"]


RECIPES = {
    "finetune --init": (finetune, "tuss_dir"),
    "pretrain model.init": (pretrain, "backbone_dir"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_init_reports_a_damaged_model_in_one_line(
    recipe: str, kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    main, source = RECIPES[recipe]
    model = damaged(request.getfixturevalue(source), kind, tmp_path)
    before = digest(model)
    args = recipe_args(recipe, model, tmp_path / "run")
    with pytest.raises(SystemExit) as stop:
        run_recipe(lambda: main(args))
    one_line(str(stop.value.code), DAMAGE[kind][2])
    assert str(stop.value.code).startswith("error: ")
    assert digest(model) == before and not (tmp_path / "run").exists()
