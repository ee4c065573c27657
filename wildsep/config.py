"""Typed configs: YAML files and `key=value` overrides validated against dataclass schemas.

A recipe declares its config as nested dataclasses; `load_config` merges the schema defaults,
the YAML file and the command-line overrides with omegaconf, so an unknown key, a wrong type or
a missing required value fails at start — naming the key and the valid choices — instead of
hours into a run.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

T = TypeVar("T")


class _OverrideLoader(yaml.SafeLoader):
    """YAML for `key=value` overrides with YAML 1.2 booleans: only true/false are booleans, so
    `train.precision=no` stays the string "no" (omegaconf still reads yes/no/on/off into
    boolean fields)."""


_OverrideLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_OverrideLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


class ConfigError(ValueError):
    """A config that does not match its schema; the message says which key and what is valid."""


def _schema_at(schema: type, dotted: str) -> type | None:
    """The dataclass type found by following `dotted` field names from `schema`, if any."""
    node: Any = schema
    for part in filter(None, dotted.split(".")):
        if not dataclasses.is_dataclass(node):
            return None
        node = typing.get_type_hints(node).get(part)
    return node if dataclasses.is_dataclass(node) else None


def _unknown_key_message(schema: type, error: ConfigKeyError, source: str) -> str:
    key = str(getattr(error, "key", "") or "")
    parent = str(getattr(error, "full_key", "") or "")
    parent = parent.rsplit(".", 1)[0] if "." in parent else ""
    node = _schema_at(schema, parent) or schema
    valid = [f.name for f in dataclasses.fields(node)]
    where = f"'{parent}'" if parent else "the top level"
    message = f"unknown config key '{parent + '.' if parent else ''}{key}' in {source}"
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" — did you mean '{close[0]}'?" if close else ""
    return f"{message}{hint}\nvalid keys at {where}: {', '.join(valid)}"


def load_config(
    schema: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()
) -> T:
    """Build a validated config: schema defaults ← YAML file ← `key=value` overrides.

    Args:
        schema: a dataclass type (nested dataclasses for sections).
        path: YAML file, or None for the defaults alone.
        overrides: dotted `key=value` strings, e.g. `["optim.lr=3e-4", "data.root=/corpus"]`.
    Returns:
        An instance of `schema` (nested dataclass instances; their `__post_init__` checks ran).
    Raises:
        ConfigError: unknown key (with the valid keys and a close match), wrong type, missing
            required value, unreadable YAML.
    """
    config = OmegaConf.structured(schema)
    layers: list[tuple[str, DictConfig]] = []
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            layers.append((str(path), OmegaConf.load(path)))
        except Exception as error:  # YAML syntax errors come in several exception types
            raise ConfigError(f"cannot parse {path}: {error}") from error
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"overrides must look like key=value, got: {' '.join(bad)}")
    for source, layer in layers:
        try:
            config = OmegaConf.merge(config, layer)
        except ConfigKeyError as error:
            raise ConfigError(_unknown_key_message(schema, error, source)) from None
        except OmegaConfBaseException as error:
            reason = str(error.msg).splitlines()[0]
            raise ConfigError(
                f"invalid value for '{error.full_key}' in {source}: {reason}"
            ) from None
        except TypeError as error:  # e.g. a mapping where the schema has a list
            raise ConfigError(f"invalid structure in {source}: {error}") from None
    for override in overrides:
        # One at a time with `update`, so list items can be set too (`stages.0.steps=10`).
        key, raw = override.split("=", 1)
        try:
            value = yaml.load(raw, Loader=_OverrideLoader) if raw else ""  # a SafeLoader
            OmegaConf.update(config, key, value, merge=True)
        except ConfigKeyError as error:
            raise ConfigError(_unknown_key_message(schema, error, "the command line")) from None
        except (OmegaConfBaseException, yaml.YAMLError, IndexError, TypeError) as error:
            reason = str(getattr(error, "msg", error)).splitlines()[0]
            if reason.startswith("Key '") and " not in " in reason:  # unknown nested key
                error.key, error.full_key = reason.split("'")[1], key  # type: ignore[union-attr]
                raise ConfigError(_unknown_key_message(schema, error, "the command line")) from None
            raise ConfigError(f"invalid override {override!r}: {reason}") from None
    missing = sorted(OmegaConf.missing_keys(config))
    if missing:
        raise ConfigError(
            f"required config values are missing: {', '.join(missing)} "
            "(set them in the YAML file or as key=value on the command line)"
        )
    try:
        OmegaConf.resolve(config)  # fail now on a bad ${...} interpolation or unset env var
    except MissingMandatoryValue as error:
        raise ConfigError(f"required config value is missing: {error.full_key}") from None
    except OmegaConfBaseException as error:
        raise ConfigError(
            f"cannot resolve config value '{error.full_key}': {str(error.msg).splitlines()[0]}"
            " — set it on the "
            f"command line ({error.full_key}=...) or fix the YAML"
        ) from None
    try:
        return OmegaConf.to_object(config)  # type: ignore[return-value]
    except (ValueError, TypeError) as error:  # a schema's own __post_init__ check
        raise ConfigError(f"invalid config: {error}") from None


def save_config(config: Any, path: str | Path) -> None:
    """Write a config (dataclass instance) as YAML: what the run actually used."""
    Path(path).write_text(OmegaConf.to_yaml(OmegaConf.structured(config)))
