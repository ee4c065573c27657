"""Atomic, rotating training checkpoints.

A checkpoint is a folder `ckpt-<step>` holding Accelerate's state (model as safetensors,
optimizer, per-process RNG — all loaded back with `weights_only=True`), `trainer_state.json`
(step, counters, schedule, data position) and `extra.safetensors` (tensors of the objective,
e.g. an EMA teacher). It is written under a `.tmp` name and renamed when complete, so a kill at
any moment leaves either the previous checkpoints or a complete new one, never a torn one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)
CHECKPOINT = re.compile(r"^ckpt-(\d{9})$")
STATE_FILE = "trainer_state.json"
EXTRA_FILE = "extra.safetensors"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders are ignored)."""
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


def save_checkpoint(
    accelerator: Accelerator,
    run_dir: Path,
    step: int,
    state: dict,
    extra: dict[str, torch.Tensor],
    keep_last: int,
) -> Path | None:
    """Write `ckpt-<step>` atomically and delete all but the newest `keep_last`.

    Must be called on every process (DeepSpeed shards are written by each). Returns the folder,
    or None when writing failed (e.g. disk full): the error is logged, the partial folder
    removed, the older checkpoints kept, and training goes on.
    """
    final = run_dir / f"ckpt-{step:09d}"
    tmp = run_dir / f"ckpt-{step:09d}.tmp"
    ok = torch.tensor(1.0, device=accelerator.device)
    try:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp), safe_serialization=True)
        if accelerator.is_main_process:
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
            save_file(
                {k: v.detach().contiguous().cpu() for k, v in extra.items()}, tmp / EXTRA_FILE
            )
            _fsync_tree(tmp)
    except OSError as error:
        log.error("could not write checkpoint %s (%s); keeping the previous ones", final, error)
        ok.zero_()
    if accelerator.num_processes > 1:
        ok = accelerator.reduce(ok, reduction="sum") / accelerator.num_processes
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return final if ok.item() == 1.0 else None
    if ok.item() != 1.0:
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(accelerator: Accelerator, folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Restore Accelerate's state from `folder`; return (trainer state, extra tensors)."""
    state_path = folder / STATE_FILE
    if not state_path.is_file():
        raise FileNotFoundError(f"{folder} is not a wildsep checkpoint (no {STATE_FILE})")
    accelerator.load_state(str(folder))
    state = json.loads(state_path.read_text())
    extra_path = folder / EXTRA_FILE
    extra = load_file(extra_path, device=str(accelerator.device)) if extra_path.exists() else {}
    return state, extra


def average_model_weights(folders: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the model weights saved in several checkpoints.

    Floating tensors are averaged in float64 and cast back; integer buffers come from the
    newest checkpoint.
    """
    if not folders:
        raise ValueError("no checkpoints to average")
    total: dict[str, torch.Tensor] = {}
    for folder in folders:
        for name, value in load_file(folder / "model.safetensors").items():
            if name not in total or not value.is_floating_point():
                total[name] = value.double() if value.is_floating_point() else value
            else:
                total[name] += value.double()
    first = load_file(folders[0] / "model.safetensors")
    return {
        k: (v / len(folders)).to(first[k].dtype) if first[k].is_floating_point() else v
        for k, v in total.items()
    }
