"""Atomic, rotating, verified training checkpoints.

A checkpoint is a folder `ckpt-<step>` holding Accelerate's state (model as safetensors,
optimizer, per-process RNG, the fp16 gradient scaler — all loaded back with
`weights_only=True`), `trainer_state.json` (step, counters, schedule, data position, number of
processes) and `extra.safetensors` (tensors of the objective, e.g. an EMA teacher). It is
written under a `.tmp` name, verified, and renamed when complete, so a kill at any moment
leaves either the previous checkpoints or a complete new one, never a torn one; the older
checkpoints are rotated out only after the new one has passed.

Files can still go bad later (a disk that filled up, a copy cut short, bit rot), so a
checkpoint is verified completely before it is used, before any state is touched:
safetensors files are read end to end, every torch archive is checked against the CRC-32s it
carries and loaded with `weights_only=True`, and names and shapes are compared with the live
model, optimizer and objective. Resuming takes the newest checkpoint that passes; each newer
one that fails is renamed `ckpt-<step>.corrupt` (kept for inspection, out of the rotation),
with a warning naming the file and the problem. When none passes, resuming stops with one
`CheckpointError` line naming each folder's problem, and nothing is renamed or deleted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from accelerate.utils import load as accelerate_load
from safetensors import SafetensorError
from safetensors.torch import save_file

from wildsep.models.pretrained import (
    CheckpointError,
    first_line,
    read_json,
    read_safetensors,
    state_dict_mismatch,
)

log = logging.getLogger(__name__)
CHECKPOINT = re.compile(r"^ckpt-(\d{9})$")
STATE_FILE = "trainer_state.json"
EXTRA_FILE = "extra.safetensors"
CORRUPT_SUFFIX = ".corrupt"
STATE_KEYS = {"step": int, "counters": dict, "schedule": dict, "data_position": int}
RNG_KEYS = ("random_state", "numpy_random_seed", "torch_manual_seed")
# Accelerate 1.x file names (accelerate/utils/constants.py and checkpointing.py).
_TORCH_SUFFIXES = (".bin", ".pkl", ".pt")


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoints of a run, oldest first (temporary and `.corrupt` folders are ignored)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if p.is_dir() and CHECKPOINT.match(p.name)]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make renames inside `folder` durable."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_folder_atomically(folder: Path, write: Callable[[Path], object]) -> Path:
    """Create or replace `folder` with what `write(tmp)` puts into a temporary sibling.

    The sibling `<name>.tmp` is written and fsynced first, then renamed into place, so a kill
    at any moment leaves the previous folder or the complete new one. (Replacing takes two
    renames; in the microseconds between them the previous folder is complete under
    `<name>.old`.)
    """
    folder = Path(folder)
    tmp, old = folder.with_name(f"{folder.name}.tmp"), folder.with_name(f"{folder.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # the previous folder stays as it was
        raise
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    _fsync_dir(folder.parent)
    shutil.rmtree(old, ignore_errors=True)
    return folder


# ---------------------------------------------------------------------------------------------
# Verification


def _deepspeed_record_types() -> list[type]:
    """The plain-data DeepSpeed classes its checkpoints pickle besides tensors (loss-scale
    records, the ZeRO stage, the address of a parameter's slice of a partition): allowed by
    name, so that `weights_only=True` can read DeepSpeed's files. DeepSpeed itself then loads
    them with `weights_only=False`, which is why every file is read here first."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


def read_torch_file(path: Path, deepspeed: bool = False) -> Any:
    """A file written by `torch.save`, checked end to end and loaded with `weights_only=True`
    (Accelerate's own loader, with its allow-list for NumPy RNG states, plus DeepSpeed's
    record types for a DeepSpeed shard); CheckpointError."""
    name = path.name
    if not path.is_file():
        raise CheckpointError(f"{name} is missing")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()  # reads every record and checks its CRC-32
    except (zipfile.BadZipFile, EOFError):
        raise CheckpointError(f"{name} is truncated or corrupt (not a complete archive)") from None
    except OSError as err:
        raise CheckpointError(f"{name} is unreadable ({err.strerror or err})") from None
    if damaged is not None:
        raise CheckpointError(f"{name} is corrupt (checksum mismatch in {damaged})")
    try:
        with torch.serialization.safe_globals(_deepspeed_record_types() if deepspeed else []):
            return accelerate_load(path, map_location="cpu")
    except Exception as err:  # any failure to load means the file is unusable
        raise CheckpointError(f"{name} cannot be loaded safely ({first_line(err)})") from None


def _read_state(folder: Path, step: int | None) -> dict:
    state = read_json(folder / STATE_FILE, STATE_FILE)
    if not isinstance(state, dict):
        raise CheckpointError(f"{STATE_FILE} does not hold an object")
    wrong = [k for k, kind in STATE_KEYS.items() if not isinstance(state.get(k), kind)]
    if wrong:
        raise CheckpointError(f"{STATE_FILE} lacks valid {', '.join(wrong)}")
    if step is not None and state["step"] != step:
        raise CheckpointError(f"{STATE_FILE} says step {state['step']}, the folder step {step}")
    return state


def _optimizer_mismatch(saved: Any, optimizer: torch.optim.Optimizer) -> str | None:
    """Why `saved` would not load into `optimizer` (group sizes, state shapes), or None."""
    if not isinstance(saved, dict) or not {"state", "param_groups"} <= set(saved):
        return "not an optimizer state"
    sizes = [len(g.get("params", ())) for g in saved["param_groups"]]
    live = [len(g["params"]) for g in optimizer.param_groups]
    if sizes != live:
        return f"parameter groups of sizes {sizes}, the optimizer has {live}"
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, entry in saved["state"].items():
        if not isinstance(index, int) or not 0 <= index < len(params):
            return f"state for an unknown parameter {index!r}"
        for key, value in entry.items():
            shape = params[index].shape
            if isinstance(value, torch.Tensor) and value.dim() and value.shape != shape:
                return f"{key} of parameter {index} has shape {tuple(value.shape)}"
    return None


def deepspeed_optimizer_partition(rank: int) -> str:
    """The file of process `rank`'s ZeRO partition of the optimizer state (DeepSpeed's naming,
    one model-parallel rank)."""
    return f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt"


def _numbered(stem: str, index: int, suffix: str) -> str:
    """Accelerate's naming: `optimizer.bin`, `optimizer_1.bin`, …"""
    return f"{stem}{suffix}" if index == 0 else f"{stem}_{index}{suffix}"


def checkpoint_problems(
    accelerator: Accelerator,
    folder: Path,
    extra_template: Mapping[str, torch.Tensor] | None = None,
) -> list[str]:
    """Everything that keeps `folder` from being loaded into this accelerator's objects.

    Mirrors what `Accelerator.load_state` (Accelerate 1.x) reads for the registered models,
    optimizers, schedulers, gradient scaler and RNG states of every process that wrote the
    checkpoint, plus wildsep's `trainer_state.json` and `extra.safetensors` (whose names and
    shapes must match `extra_template`, when given). Reads everything, changes nothing.
    Returns one-line problems, e.g. "model.safetensors is truncated (812 of 1604 bytes)".
    """
    problems: list[str] = []

    def readable(path: Path, deepspeed: bool = False) -> None:
        read_torch_file(path, deepspeed)

    def check(action: Callable[[], str | None]) -> None:
        try:
            problem = action()
        except CheckpointError as err:
            problem = str(err)
        if problem:
            problems.append(problem)

    match = re.match(r"^ckpt-(\d{9})", folder.name)
    state: dict = {}

    def read_state() -> None:
        state.update(_read_state(folder, int(match.group(1)) if match else None))

    check(read_state)
    checked: set[str] = {STATE_FILE}
    models = getattr(accelerator, "_models", [])
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        # DeepSpeed writes model and optimizer shards into a folder per model, one ZeRO
        # partition of the optimizer state per process; its own loader reads them (unpickling
        # freely), so each archive is checked against its CRC-32s and read safely here first.
        for i in range(len(models)):
            shards = folder / _numbered("pytorch_model", i, "")
            files = sorted(p for p in shards.rglob("*") if p.is_file()) if shards.is_dir() else []
            if not files:
                problems.append(f"{shards.name}/ is missing or empty")
            for rank in range(int(state.get("num_processes", 1)) if files else 0):
                partition = shards / deepspeed_optimizer_partition(rank)
                if not partition.is_file():
                    problems.append(f"{shards.name}/{partition.name} is missing")
            for path in files:
                checked.add(str(path.relative_to(folder)))
                if path.suffix in _TORCH_SUFFIXES:
                    check(lambda path=path: readable(path, deepspeed=True))
    else:
        for i, model in enumerate(models):
            name = _numbered("model", i, ".safetensors")
            checked.add(name)

            def check_model(name: str = name, model: torch.nn.Module = model) -> str | None:
                mismatch = state_dict_mismatch(read_safetensors(folder / name), model.state_dict())
                return f"{name} does not match the model ({mismatch})" if mismatch else None

            check(check_model)
        for i, optimizer in enumerate(getattr(accelerator, "_optimizers", [])):
            name = _numbered("optimizer", i, ".bin")
            checked.add(name)

            def check_optimizer(name: str = name, optimizer: Any = optimizer) -> str | None:
                mismatch = _optimizer_mismatch(read_torch_file(folder / name), optimizer)
                return f"{name} does not match the optimizer ({mismatch})" if mismatch else None

            check(check_optimizer)
    for i in range(len(getattr(accelerator, "_schedulers", []))):
        name = _numbered("scheduler", i, ".bin")
        checked.add(name)
        check(lambda name=name: readable(folder / name))
    if accelerator.scaler is not None:
        checked.add("scaler.pt")
        check(lambda: readable(folder / "scaler.pt"))
    # One RNG file per process that wrote the checkpoint (Accelerate skips a missing one
    # silently, which would quietly change the random stream).
    for rank in range(int(state.get("num_processes", 1))):
        name = f"random_states_{rank}.pkl"
        checked.add(name)

        def check_rng(name: str = name) -> str | None:
            rng = read_torch_file(folder / name)
            if not isinstance(rng, dict) or not all(k in rng for k in RNG_KEYS):
                return f"{name} is not an RNG state"
            return None

        check(check_rng)
    customs = list(folder.glob("custom_checkpoint_*.pkl"))
    if len(customs) != len(getattr(accelerator, "_custom_objects", [])):
        problems.append(f"holds {len(customs)} custom_checkpoint files, not the registered count")

    def check_extra() -> str | None:
        extra = read_safetensors(folder / EXTRA_FILE)
        if extra_template is None:
            return None
        mismatch = state_dict_mismatch(extra, extra_template)
        return f"{EXTRA_FILE} does not match the objectives ({mismatch})" if mismatch else None

    check(check_extra)
    checked.add(EXTRA_FILE)
    # Anything else Accelerate wrote (sampler or dataloader states, other ranks' RNG files).
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in _TORCH_SUFFIXES and path.name not in checked:
            if not path.name.startswith("custom_checkpoint_"):  # Accelerate unpickles those
                check(lambda path=path: readable(path))
    return problems


def verify_checkpoint(
    accelerator: Accelerator,
    folder: Path,
    extra_template: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Raise `CheckpointError` (one line) unless `folder` passes `checkpoint_problems`."""
    problems = checkpoint_problems(accelerator, folder, extra_template)
    if problems:
        raise CheckpointError(f"{folder}: {'; '.join(problems)}")


def _everywhere(accelerator: Accelerator, flag: bool) -> bool:
    """Whether `flag` holds on every process (all must take the same branch)."""
    if accelerator.num_processes == 1:
        return flag
    value = torch.tensor(float(flag), device=accelerator.device)
    return bool(accelerator.reduce(value, reduction="sum").item() == accelerator.num_processes)


# ---------------------------------------------------------------------------------------------
# Saving

# What a failed write raises: the OS's errors, and safetensors' own for the same I/O failures
# (a full disk while serialising weights is a SafetensorError, not an OSError).
WRITE_ERRORS = (OSError, SafetensorError)


def save_checkpoint(
    accelerator: Accelerator,
    run_dir: Path,
    step: int,
    state: dict,
    extra: dict[str, torch.Tensor],
    keep_last: int,
) -> Path | None:
    """Write `ckpt-<step>` atomically, verify it, then delete all but the newest `keep_last`.

    Must be called on every process (DeepSpeed shards are written by each). Returns the folder,
    or None when writing or verifying failed (e.g. disk full): the error is logged, the partial
    folder removed, the older checkpoints kept, and training goes on. Rotation only ever
    deletes checkpoints older than the one just verified.
    """
    final = run_dir / f"ckpt-{step:09d}"
    tmp = run_dir / f"ckpt-{step:09d}.tmp"
    ok = True
    try:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
    except OSError as error:
        log.error("could not write checkpoint %s (%s); keeping the previous ones", final, error)
        ok = False
    ok = _everywhere(accelerator, ok)  # save_state is collective under DeepSpeed: all or none
    if ok:
        try:
            accelerator.save_state(str(tmp), safe_serialization=True)
        except WRITE_ERRORS as error:
            log.error("could not write checkpoint %s (%s); keeping the previous ones", final, error)
            ok = False
    accelerator.wait_for_everyone()  # every process has written its files
    if accelerator.is_main_process and ok:
        try:
            full_state = {**state, "num_processes": accelerator.num_processes}
            (tmp / STATE_FILE).write_text(json.dumps(full_state, indent=1))
            save_file(
                {k: v.detach().contiguous().cpu() for k, v in extra.items()}, tmp / EXTRA_FILE
            )
            _fsync_tree(tmp)
            verify_checkpoint(accelerator, tmp, extra)
        except (*WRITE_ERRORS, CheckpointError) as error:
            log.error("could not write checkpoint %s (%s); keeping the previous ones", final, error)
            ok = False
    ok = _everywhere(accelerator, ok)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return final if ok else None
    if not ok:
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _fsync_dir(run_dir)
    older = [p for p in list_checkpoints(run_dir) if p.name < final.name]
    for old in older[: max(0, len(older) - (keep_last - 1))] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


# ---------------------------------------------------------------------------------------------
# Loading


def _apply(accelerator: Accelerator, folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    accelerator.load_state(str(folder))
    state = json.loads((folder / STATE_FILE).read_text())
    # Read on the CPU, then move: safetensors rejects device names such as "cpu:0", which a
    # CPU process of a multi-process run has.
    extra = {k: v.to(accelerator.device) for k, v in read_safetensors(folder / EXTRA_FILE).items()}
    return state, extra


def load_checkpoint(
    accelerator: Accelerator,
    folder: Path,
    extra_template: Mapping[str, torch.Tensor] | None = None,
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Verify `folder`, then restore Accelerate's state from it; return (trainer state, extra
    tensors). A folder that fails verification raises `CheckpointError` before anything is
    loaded."""
    verify_checkpoint(accelerator, folder, extra_template)
    return _apply(accelerator, folder)


def quarantine(folder: Path) -> Path:
    """Rename a bad checkpoint `ckpt-N` to `ckpt-N.corrupt` (or `.corrupt-2`, …): kept for
    inspection, invisible to rotation and resuming."""
    target = folder.with_name(folder.name + CORRUPT_SUFFIX)
    count = 1
    while target.exists():
        count += 1
        target = folder.with_name(f"{folder.name}{CORRUPT_SUFFIX}-{count}")
    os.replace(folder, target)
    return target


def load_latest_checkpoint(
    accelerator: Accelerator,
    run_dir: Path,
    extra_template: Mapping[str, torch.Tensor] | None = None,
) -> tuple[Path, dict, dict[str, torch.Tensor]] | None:
    """Restore the newest checkpoint of `run_dir` that passes verification.

    Returns (folder, trainer state, extra tensors), or None when the run has no checkpoint.
    Newer checkpoints that fail are renamed `.corrupt` with a warning naming the problem. When
    every checkpoint fails, raises `CheckpointError` naming each folder's problem, changing
    nothing. All processes must call this; they agree on every verdict.
    """
    run_dir = Path(run_dir)
    bad: list[tuple[Path, str]] = []
    good = None
    for folder in reversed(list_checkpoints(run_dir)):
        problems = checkpoint_problems(accelerator, folder, extra_template)
        if not _everywhere(accelerator, not problems) and not problems:
            problems = ["failed verification on another process"]
        if not problems:
            good = folder
            break
        bad.append((folder, "; ".join(problems)))
    if good is None:
        if not bad:
            return None
        listed = "; ".join(f"{folder.name}: {problem}" for folder, problem in bad)
        raise CheckpointError(
            f"cannot resume {run_dir}: no usable checkpoint ({listed}); nothing was changed: "
            "repair or move these folders away, or choose another run_dir"
        )
    if accelerator.is_main_process:
        for folder, problem in bad:
            try:
                kept = quarantine(folder).name
            except OSError as error:
                kept = f"{folder.name} (could not rename it: {error.strerror})"
            log.warning(
                "%s: %s; resuming from %s (the bad one is kept as %s)",
                folder.name,
                problem,
                good.name,
                kept,
            )
    accelerator.wait_for_everyone()
    state, extra = _apply(accelerator, good)
    return good, state, extra


def average_model_weights(folders: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the model weights saved in several checkpoints.

    Floating tensors are averaged in float64 and cast back; integer buffers come from the
    newest checkpoint. A checkpoint whose weights cannot be read raises `CheckpointError`.
    """
    if not folders:
        raise ValueError("no checkpoints to average")

    def weights(folder: Path) -> dict[str, torch.Tensor]:
        try:
            return read_safetensors(folder / "model.safetensors")
        except CheckpointError as err:
            raise CheckpointError(f"cannot average {folder.name}: {err}") from None

    total: dict[str, torch.Tensor] = {}
    for folder in folders:
        for name, value in weights(folder).items():
            if name not in total or not value.is_floating_point():
                total[name] = value.double() if value.is_floating_point() else value
            else:
                total[name] += value.double()
    first = weights(folders[0])
    return {
        k: (v / len(folders)).to(first[k].dtype) if first[k].is_floating_point() else v
        for k, v in total.items()
    }
