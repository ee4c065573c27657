"""Checkpoint directories: `model.safetensors` (weights) + `config.json` (class name and config).

A model is rebuilt from its directory alone. Weights go through safetensors and the config
through JSON, so loading never unpickles anything.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS, CONFIG = "model.safetensors", "config.json"
FORMAT_VERSION = 1
_MODEL_CLASSES: dict[str, type[PretrainedModel]] = {}


class CheckpointError(ValueError):
    """A path that does not hold a loadable exported model; the message is one line."""


def resolve_model_dir(path: str | Path) -> Path:
    """The exported-model folder for `path`: the folder itself, or a run directory's `model/`.

    Raises `CheckpointError` naming what is missing.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"model folder {path} does not exist")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file; expected an exported model folder")
    for candidate in (path, path / "model"):
        if (candidate / "config.json").is_file():
            return candidate
    raise CheckpointError(
        f"{path} has no config.json: not an exported wildsep model (expected config.json + "
        "model.safetensors, or a run directory containing model/)"
    )


class PretrainedModel(nn.Module):
    """Base of every model here: holds its dataclass `config`, saves and loads directories."""

    config_class: ClassVar[type]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _MODEL_CLASSES[cls.__name__] = cls

    def __init__(self, config: Any) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        self.config = config

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `model.safetensors` and `config.json` into `directory` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS))
        meta = {
            "format_version": FORMAT_VERSION,
            "class": type(self).__name__,
            "config": dataclasses.asdict(self.config),
        }
        (directory / CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> PretrainedModel:
        """Rebuild the model saved in `directory`; it must be of this class."""
        model = load_pretrained(directory)
        if not isinstance(model, cls):
            raise ValueError(f"{directory} holds a {type(model).__name__}, not a {cls.__name__}")
        return model


def read_config(directory: str | Path) -> tuple[type[PretrainedModel], Any]:
    """The model class and config stored in a checkpoint directory."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG} in {directory}: not a checkpoint directory")
    meta = json.loads(path.read_text())
    name = meta.get("class")
    if name not in _MODEL_CLASSES:
        raise ValueError(f"{path}: unknown model class {name!r}; known: {sorted(_MODEL_CLASSES)}")
    cls = _MODEL_CLASSES[name]
    known = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = set(meta["config"]) - known
    if unknown:
        raise ValueError(f"{path}: unknown {cls.config_class.__name__} fields {sorted(unknown)}")
    return cls, cls.config_class(**meta["config"])


def load_pretrained(directory: str | Path, device: str = "cpu") -> PretrainedModel:
    """Rebuild whichever model is saved in `directory` (its class is named in config.json)."""
    cls, config = read_config(directory)
    model = cls(config)
    model.load_state_dict(load_file(str(Path(directory) / WEIGHTS)))
    return model.to(device)
