"""Exported models: `model.safetensors` (weights) + `config.json` (class name and config).

A model is rebuilt from its directory alone. Weights go through safetensors and the config
through JSON, so loading never unpickles anything. `load_pretrained` is the one way in, used by
`wildsep separate`, `wildsep evaluate` and the recipes' `--init`/`model.init`: every way a folder
can be unusable (missing, truncated or garbage files, an unknown class or config field, weights
that do not fit the config) is a one-line `CheckpointError` naming the folder and the problem,
and nothing in the folder is written.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

WEIGHTS, CONFIG = "model.safetensors", "config.json"
FORMAT_VERSION = 1
_MODEL_CLASSES: dict[str, type[PretrainedModel]] = {}
_SAFETENSORS_MAX_HEADER = 100_000_000  # the format's own limit on the JSON header


class CheckpointError(ValueError):
    """A path that does not hold a loadable model or checkpoint; the message is one line."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message (some list every tensor over many lines)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _listed(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def read_safetensors(path: str | Path, device: str = "cpu") -> dict[str, Tensor]:
    """Every tensor of a safetensors file, read end to end.

    Raises `CheckpointError` naming the file (by its name only; callers add the folder) and
    what is wrong: missing, truncated (with the byte counts its header implies), not a
    safetensors file, or corrupt.
    """
    path = Path(path)
    name = path.name
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            declared = int.from_bytes(head, "little") if len(head) == 8 else 0
            header_bytes = handle.read(min(declared, _SAFETENSORS_MAX_HEADER))
    except FileNotFoundError:
        raise CheckpointError(f"{name} is missing") from None
    except OSError as err:
        raise CheckpointError(f"{name} is unreadable ({err.strerror or err})") from None
    if size < 8:
        raise CheckpointError(f"{name} is truncated ({size} bytes, less than a header)")
    if not header_bytes.startswith(b"{") or declared > _SAFETENSORS_MAX_HEADER:
        raise CheckpointError(f"{name} is not a safetensors file (no JSON header)")
    if 8 + declared > size:
        raise CheckpointError(f"{name} is truncated ({size} of at least {8 + declared} bytes)")
    try:
        header = json.loads(header_bytes)
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise CheckpointError(f"{name} is corrupt (its header is not valid)") from None
    expected = 8 + declared + max(ends, default=0)
    if size < expected:
        raise CheckpointError(f"{name} is truncated ({size} of {expected} bytes)")
    if size > expected:
        raise CheckpointError(f"{name} is corrupt ({size - expected} bytes beyond its data)")
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{name} is corrupt ({first_line(err)})") from None


def read_json(path: Path, label: str) -> Any:
    """A JSON file's content; `CheckpointError` calling it `label` when it is missing,
    unreadable, truncated or not JSON."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{label} is missing") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"{label} is truncated or not valid JSON ({err.msg}, line {err.lineno})"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{label} is unreadable ({first_line(err)})") from None


def state_dict_mismatch(found: Mapping[str, Tensor], expected: Mapping[str, Tensor]) -> str | None:
    """Why tensors `found` cannot be loaded (strictly) where `expected` is the state dict, or None.

    Names missing or unexpected, and shapes that differ, each listed briefly on one line.
    """
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [
        f"{k} {tuple(found[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in found and found[k].shape != v.shape
    ]
    parts = [
        f"missing {_listed(missing)}" if missing else "",
        f"unexpected {_listed(unexpected)}" if unexpected else "",
        f"shapes differ (found vs expected): {_listed(shapes)}" if shapes else "",
    ]
    return "; ".join(p for p in parts if p) or None


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
        if (candidate / CONFIG).is_file():
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
        """Rebuild the model saved in `directory` (`load_pretrained`); it must be of this class."""
        model = load_pretrained(directory)
        if not isinstance(model, cls):
            raise CheckpointError(
                f"{directory} holds a {type(model).__name__}, not a {cls.__name__}"
            )
        return model


def read_config(directory: str | Path) -> tuple[type[PretrainedModel], Any]:
    """The model class and config stored in an exported-model folder (or a run's `model/`).

    Raises `CheckpointError` for a missing, truncated or invalid config.json, an unknown class,
    unknown fields, or values the config class rejects.
    """
    path = resolve_model_dir(directory) / CONFIG
    meta = read_json(path, str(path))
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{path} is not a wildsep model config (needs class and config)")
    version = meta.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {version!r}; this wildsep reads up to {FORMAT_VERSION}"
        )
    name = meta.get("class")
    if name not in _MODEL_CLASSES:
        raise CheckpointError(
            f"{path}: unknown model class {name!r}; known: {sorted(_MODEL_CLASSES)}"
        )
    cls = _MODEL_CLASSES[name]
    known = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = set(meta["config"]) - known
    if unknown:
        raise CheckpointError(
            f"{path}: unknown {cls.config_class.__name__} fields {sorted(unknown)}"
        )
    try:
        return cls, cls.config_class(**meta["config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"{path}: invalid {cls.config_class.__name__} ({first_line(err)})"
        ) from None


def load_pretrained(path: str | Path, device: str | torch.device = "cpu") -> PretrainedModel:
    """Rebuild the model exported at `path` (a model folder or a run directory) on `device`.

    The class named in config.json is built from its config, and the weights are read end to
    end and must match it name for name and shape for shape; anything else is a one-line
    `CheckpointError`.
    """
    directory = resolve_model_dir(path)
    cls, config = read_config(directory)
    try:
        model = cls(config)
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{directory / CONFIG}: cannot build a {cls.__name__} ({first_line(err)})"
        ) from None
    try:
        weights = read_safetensors(directory / WEIGHTS)
    except CheckpointError as err:
        raise CheckpointError(f"cannot load the model in {directory}: {err}") from None
    mismatch = state_dict_mismatch(weights, model.state_dict())
    if mismatch:
        raise CheckpointError(
            f"{directory / WEIGHTS} does not fit the {cls.__name__} of config.json: {mismatch}"
        )
    model.load_state_dict(weights)
    return model.to(device)
