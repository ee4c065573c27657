"""The recipe interface: a name, options with their choices, and a function that walks ROOT."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from wildsep.prepare.output import Prepared, PrepareError


@dataclass(frozen=True)
class Option:
    """A recipe option: its allowed values (the first is the default) and what it means."""

    choices: tuple[str, ...]
    help: str


@dataclass(frozen=True)
class Recipe:
    """`wildsep prepare NAME ROOT --out DIR [-o KEY=VALUE ...]`.

    Attributes:
        name: the CLI name.
        corpus: the corpus' own name, as its authors spell it.
        layout: the folders/files ROOT must hold (shown in errors and `--help`).
        run: fills a `Prepared` from its `root`, with the resolved options.
        options: per-recipe options.
    """

    name: str
    corpus: str
    layout: str
    run: Callable[[Prepared, dict[str, str]], None]
    options: dict[str, Option] = field(default_factory=dict)

    def resolve_options(self, given: dict[str, str]) -> dict[str, str]:
        """Defaults filled in; PrepareError for an unknown option or value."""
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise PrepareError(f"{self.name} has no option {unknown[0]!r}; its options: {known}")
        resolved = {}
        for key, option in self.options.items():
            value = given.get(key, option.choices[0])
            if value not in option.choices:
                raise PrepareError(
                    f"option {key}={value!r} of {self.name}: choose from {list(option.choices)}"
                )
            resolved[key] = value
        return resolved


def locate(root: Path, recipe: str, layout: str, has: Callable[[Path], bool], *names: str) -> Path:
    """The corpus folder: ROOT itself when `has(ROOT)`, else the first folder one or two
    levels down (those called `names` first) for which `has` holds — users point at the
    download folder or at the corpus inside it."""
    if has(root):
        return root
    children = [root / n for n in names] + sorted(p for p in root.iterdir() if p.is_dir())
    grandchildren = [g for c in children if c.is_dir() for g in sorted(c.iterdir()) if g.is_dir()]
    for folder in [*children, *[c / n for c in children for n in names], *grandchildren]:
        if folder.is_dir() and has(folder):
            return folder
    raise PrepareError(f"{root} does not look like {recipe}: expected {layout}")


def audio_in(folder: Path, suffixes: Iterable[str] = (".wav", ".flac")) -> list[Path]:
    """Non-hidden audio files directly in `folder`, sorted; [] if it does not exist."""
    if not folder.is_dir():
        return []
    allowed = set(suffixes)
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in allowed and not p.name.startswith(".")
    )
