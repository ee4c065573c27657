"""The `wildsep` command: `wildsep separate` (your own files), `wildsep evaluate` (a test set),
`wildsep prepare` (a corpus of the field as wildsep's inputs), `wildsep push` (a model to
the Hugging Face hub) and `wildsep demo` (a local web page to try a model).

    wildsep separate song.flac recordings/ --model ckpt/ --prompts speech sfx musicbg --out sep/
    wildsep evaluate ckpt/ --set demo/test/manifest.jsonl
    wildsep prepare musdb18hq ~/data/musdb18hq --out prepared/musdb
    wildsep push runs/tuss/ my-org/tuss-medium --license cc-by-4.0
    wildsep demo --model runs/tuss/

Errors a user can fix (a missing model, unknown prompts, unreadable files) are reported in one
line, without a traceback, and the command exits with status 2. See docs/separate.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
import torch
from tqdm import tqdm

from wildsep import evaluate as evaluation
from wildsep import hub, webdemo
from wildsep import prepare as corpora
from wildsep.data.audio_io import AUDIO_EXTENSIONS, open_audio_blocks, probe
from wildsep.inference import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_SHIFT,
    DEFAULT_SEGMENT,
    DEFAULT_SHIFT,
    CheckpointError,
    Separator,
)

USAGE_ERROR = 2


class UsageError(Exception):
    """A problem with the command line that stops the run before any file is separated."""


@dataclass(frozen=True)
class InputFile:
    """An audio file to separate and the folder, relative to --out, its outputs go to."""

    path: Path
    out_subdir: Path


def _is_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def find_inputs(inputs: Sequence[str | Path], out_dir: Path) -> tuple[list[InputFile], list[str]]:
    """Expand files and folders into audio files, and list the inputs that do not exist.

    A file named on the command line is always tried, whatever its suffix. Folders are searched
    recursively for audio suffixes. Hidden files (such as macOS `._x.wav`) are skipped, and so
    is `out_dir` when it is a subfolder of the searched folder, so that a rerun does not
    separate earlier outputs. A file found at `folder/a/b.wav` writes to `OUT/a/b/`, one named
    directly to `OUT/b/`.
    """
    found: dict[Path, InputFile] = {}  # keyed by resolved path: each file once
    missing: list[str] = []
    out_resolved = out_dir.resolve()
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            skip_out = not _is_inside(path.resolve(), out_resolved)
            for file in sorted(path.rglob("*")):
                rel = file.relative_to(path)
                if (
                    file.is_file()
                    and file.suffix.lower() in AUDIO_EXTENSIONS
                    and not any(part.startswith(".") for part in rel.parts)
                    and not (skip_out and _is_inside(file.resolve(), out_resolved))
                ):
                    found.setdefault(file.resolve(), InputFile(file, rel.parent / file.stem))
        elif path.is_file():
            found.setdefault(path.resolve(), InputFile(path, Path(path.stem)))
        else:
            missing.append(f"{path}: no such file or folder")
    return list(found.values()), missing


def plan_outputs(files: Sequence[InputFile], out_dir: Path, names: Sequence[str]) -> None:
    """Refuse (UsageError) outputs that would overwrite an input or another input's outputs."""
    owners: dict[Path, Path] = {}
    for f in files:
        target = (out_dir / f.out_subdir).resolve()
        if target in owners:
            raise UsageError(
                f"{owners[target]} and {f.path} would both write to {out_dir / f.out_subdir}; "
                "separate them in different runs or give their common folder instead"
            )
        owners[target] = f.path
    inputs = {f.path.resolve() for f in files}
    for f in files:
        for name in names:
            target = out_dir / f.out_subdir / f"{name}.wav"
            if target.resolve() in inputs:
                raise UsageError(
                    f"refusing to write {target}: it is one of the inputs; choose another --out"
                )


def _missing_folders(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, innermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing


def separate_file(
    separator: Separator,
    source: Path,
    folder: Path,
    names: Sequence[str],
    prompts: Sequence[str] | None,
    progress: tqdm | None = None,
) -> None:
    """Separate `source` into `folder/<name>.wav`, streaming: read, separate, write.

    The file is decoded block by block with `read_audio`'s checks, separated with
    `Separator.separate_stream` and each output written as it comes, so memory does not grow
    with the file's length. Outputs are 32-bit float WAVs (nothing clips) at the input's rate,
    length and channels, written under temporary names and renamed at the end: an interrupted
    run or a file found bad halfway (NaN samples, truncation) leaves nothing behind, not even
    the folders it created. `progress` advances by the seconds of audio written.
    """
    info, blocks = open_audio_blocks(source)
    created = _missing_folders(folder)
    folder.mkdir(parents=True, exist_ok=True)
    partials = [folder / f".{name}.wav.part" for name in names]
    writers: list[sf.SoundFile] = []
    try:
        for partial in partials:
            writers.append(
                sf.SoundFile(
                    str(partial),
                    "w",
                    info.sample_rate,
                    info.channels,
                    subtype="FLOAT",
                    format="WAV",
                )
            )
        for stems in separator.separate_stream(blocks, info.sample_rate, prompts):
            for writer, stem in zip(writers, stems, strict=True):
                writer.write(stem.T)
            if progress is not None:
                progress.update(stems.shape[-1] / info.sample_rate)
    except BaseException:
        for writer in writers:
            writer.close()
        for partial in partials:
            partial.unlink(missing_ok=True)
        for empty in created:
            empty.rmdir()
        raise
    for writer in writers:
        writer.close()
    for partial, name in zip(partials, names, strict=True):
        os.replace(partial, folder / f"{name}.wav")


def _seconds(path: Path) -> float:
    """A file's duration from its header (0 when unreadable: it will be reported later)."""
    try:
        return probe(path).duration
    except (sf.LibsndfileError, RuntimeError, OSError):
        return 0.0


def _error(message: str) -> None:
    tqdm.write(f"wildsep: error: {message}", file=sys.stderr)


def separate_command(args: argparse.Namespace) -> int:
    """`wildsep separate`: returns the exit status."""
    out_dir = Path(args.out).expanduser()
    # "--prompts speech sfx" and "--prompts speech,sfx" mean the same.
    prompts = [p for arg in args.prompts for p in arg.split(",") if p] if args.prompts else None
    try:
        separator = Separator.from_pretrained(
            args.model,
            device=args.device,
            segment=args.segment,
            shift=args.shift,
            batch_size=args.batch_size,
            bf16=args.bf16,
            shifts=args.shifts,
        )
        # Prompts are checked before any file is read, so a typo costs nothing.
        names = separator.output_names(prompts)
        files, missing = find_inputs(args.inputs, out_dir)
        if not files and not missing:
            raise UsageError("no audio files found in " + " ".join(map(str, args.inputs)))
        plan_outputs(files, out_dir, names)
    except (CheckpointError, UsageError, ValueError) as err:
        _error(str(err))
        return USAGE_ERROR

    for message in missing:
        _error(message)
    failed = 0
    durations = [_seconds(f.path) for f in files]
    # One bar over the seconds of audio of all the files: a one-hour file moves it too.
    progress = tqdm(total=round(sum(durations), 1), desc="separating", unit="s", disable=None)
    with progress:
        for f, duration in zip(files, durations, strict=True):
            start = progress.n
            try:
                # The checks training data gets (truncated, corrupt, empty, non-finite): one
                # line per bad file, nothing written for it, the others still separated.
                separate_file(separator, f.path, out_dir / f.out_subdir, names, prompts, progress)
            except ValueError as err:
                failed += 1
                _error(f"{f.path}: {err}")
            except torch.OutOfMemoryError:
                failed += 1
                _error(f"{f.path}: out of memory; try --batch-size 1 or --device cpu")
            progress.update(start + duration - progress.n)  # float rounding, or a failed file
    print(f"separated {len(files) - failed} file(s) into {out_dir} ({', '.join(names)})")
    if failed or missing:
        _error(f"{failed + len(missing)} input(s) failed; see the messages above")
        return USAGE_ERROR
    return 0


def add_separate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or folders")
    parser.add_argument(
        "--model", required=True, help="exported model folder, run folder or hub org/name"
    )
    parser.add_argument(
        "--prompts",
        nargs="+",
        default=None,
        help="one output per prompt, duplicates allowed (prompted models only); spaces or commas",
    )
    parser.add_argument("--out", required=True, help="output folder: OUT/<input>/<prompt>.wav")
    parser.add_argument(
        "--segment", type=float, default=DEFAULT_SEGMENT, help="chunk length in seconds"
    )
    parser.add_argument(
        "--shift", type=float, default=DEFAULT_SHIFT, help="hop between chunks in seconds"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="chunks × channels per forward pass",
    )
    parser.add_argument(
        "--shifts",
        type=int,
        default=0,
        metavar="K",
        help="test-time augmentation: average K separations of the input delayed by random "
        f"offsets of up to {DEFAULT_MAX_SHIFT} s (K times slower)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: GPU if any)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on CUDA")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wildsep", description="Universal sound separation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    separate = commands.add_parser(
        "separate",
        help="separate audio files or folders",
        description="Separate audio files; writes OUT/<input stem>/<prompt>.wav.",
    )
    add_separate_arguments(separate)
    separate.set_defaults(run=separate_command)
    evaluate = commands.add_parser(
        "evaluate",
        help="score a model on an evaluation manifest",
        description=evaluation.DESCRIPTION,
    )
    evaluation.add_arguments(evaluate)
    evaluate.set_defaults(run=evaluation.run_command)
    prepare = commands.add_parser(
        "prepare",
        help="turn a corpus of the field into wildsep's inputs",
        description=corpora.DESCRIPTION,
    )
    corpora.add_arguments(prepare)
    prepare.set_defaults(run=corpora.run_command)
    push = commands.add_parser(
        "push",
        help="publish a model on the Hugging Face hub",
        description="Upload an exported model with a generated model card to the hub.",
    )
    hub.add_arguments(push)
    push.set_defaults(run=hub.run_command)
    demo = commands.add_parser(
        "demo",
        help="try a model in a local web page",
        description="Serve a local web page (Gradio) to separate uploads or recordings.",
    )
    webdemo.add_arguments(demo)
    demo.set_defaults(run=webdemo.run_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `wildsep` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
