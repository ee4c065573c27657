"""Models on the Hugging Face hub: load `org/name`, publish a run with a model card.

- `resolve_pretrained("org/name")`: the local snapshot of a hub repository through
  `huggingface_hub` (its cache, `HF_HUB_CACHE`, and offline mode, `HF_HUB_OFFLINE=1`); an
  existing local path always wins. `Separator.from_pretrained` and `wildsep separate --model`
  go through it.
- `wildsep push RUN_DIR org/name --license L`: uploads the exported model (config.json,
  model.safetensors) with a generated README.md model card (architecture, config, training
  data, evaluation table, licence); `--dry-run DIR` writes that folder instead of uploading.

See docs/separate.md#models-on-the-hugging-face-hub.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from wildsep.models.pretrained import CONFIG, WEIGHTS, CheckpointError, resolve_model_dir

# owner/name as the hub spells repository ids: letters, digits, '-', '_', '.'.
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
CARD = "README.md"
RUN_CONFIG = "config.yaml"  # what a training run saves next to model/ (wildsep.engine.run)


def is_repo_id(name: str | Path) -> bool:
    return isinstance(name, str) and bool(REPO_ID.match(name))


def _first_line(err: BaseException) -> str:
    """Hub errors carry request details over many lines: the first says what went wrong."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def resolve_pretrained(name_or_path: str | Path, revision: str | None = None) -> Path:
    """A path to hand to `load_model`: `name_or_path` itself when it exists locally or is not
    an `org/name` id, else the hub repository's snapshot (downloaded into, or read from,
    huggingface_hub's cache). Errors are one-line `CheckpointError`s."""
    path = Path(name_or_path).expanduser()
    if path.exists() or not is_repo_id(str(name_or_path)):
        return path
    repo_id = str(name_or_path)
    try:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError:
        raise CheckpointError(
            f"no local folder {path}, and loading {repo_id} from the hub needs huggingface_hub: "
            "pip install huggingface_hub"
        ) from None
    where = f"no local folder {path}; hub repository {repo_id}"
    try:
        snapshot = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=[CONFIG, WEIGHTS, CARD],
            library_name="wildsep",
        )
    except LocalEntryNotFoundError:
        mode = "offline mode (HF_HUB_OFFLINE)" if constants.HF_HUB_OFFLINE else "no connection"
        raise CheckpointError(
            f"{where} is not in the hub cache {constants.HF_HUB_CACHE} and cannot be downloaded "
            f"({mode}); download it once online, or set HF_HUB_CACHE to the cache that has it"
        ) from None
    except (RepositoryNotFoundError, GatedRepoError) as err:
        kind = "is gated: accept its terms and log in" if isinstance(err, GatedRepoError) else ""
        raise CheckpointError(
            f"{where} {kind or 'does not exist or is private (log in with `hf auth login`)'}"
        ) from None
    except RevisionNotFoundError:
        raise CheckpointError(f"{where} has no revision {revision!r}") from None
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise CheckpointError(f"{where}: {_first_line(err)}") from None
    return Path(snapshot)


# ---------------------------------------------------------------------------------------------
# Model cards


def _parameter_count(weights: Path) -> int:
    """Parameters in a safetensors file, from its header alone (no tensor is loaded)."""
    from safetensors import safe_open

    total = 0
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            count = 1
            for size in f.get_slice(key).get_shape():
                count *= size
            total += count
    return total


def _training_data(run_dir: Path) -> tuple[list[str], str | None]:
    """Lines naming the run's data sources (with the corpus when `wildsep prepare` wrote the
    manifest), and the run's whole config as YAML; ([], None) without a saved config."""
    saved = run_dir / RUN_CONFIG
    if not saved.is_file():
        return [], None
    text = saved.read_text()
    config = yaml.safe_load(text) or {}
    lines = []
    data = config.get("data") or {}
    for role, key in (("unlabeled corpus", "corpus"), ("labeled pools", "pools")):
        source = (data.get(key) or {}).get("source")
        if not source:
            continue
        line = f"- {role}: `{source}`"
        prepared = Path(source).expanduser().parent / "prepare.json"
        if prepared.is_file():
            info = json.loads(prepared.read_text())
            line += f" (`wildsep prepare {info['corpus']}`, {sum(info['written'].values())} rows)"
        lines.append(line)
    init = (config.get("model") or {}).get("init")
    if init:
        lines.append(f"- initialised from `{init}`")
    return lines, text


def _evaluations(run_dir: Path, model_dir: Path) -> list[dict[str, Any]]:
    """The metrics.json files `wildsep evaluate` left in the run (CKPT/eval_<set>/)."""
    found = sorted({*run_dir.glob("eval_*/metrics.json"), *model_dir.glob("eval_*/metrics.json")})
    return [json.loads(p.read_text()) for p in found]


def _db(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _evaluation_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| set | benchmark | task | metric | score (dB) | improvement (dB) | mixtures |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        summary = r["summary"]
        if "benchmark" in summary:
            b = summary["benchmark"]
            rows = [
                (b["name"], b["task"], b["metric"], b["score"], b["improvement"], b["examples"])
            ]
        else:
            rows = [
                ("–", task, t["metric"], t["score"], t["improvement"], t["examples"])
                for task, t in summary["tasks"].items()
            ]
        for bench, task, metric, score, improvement, count in rows:
            label = {"si_snr": "SI-SDR", "snr": "SNR"}.get(metric, metric)
            lines.append(
                f"| {r['set']} | {bench} | {task} | {label} | {_db(score)} | {_db(improvement)} "
                f"| {count} |"
            )
    return lines


def model_card(run_dir: str | Path, repo_id: str, license: str) -> str:
    """The README.md of a pushed model: hub metadata, then architecture, config, training
    data, evaluation, usage and licence."""
    run_dir = Path(run_dir).expanduser()
    model_dir = resolve_model_dir(run_dir)
    meta = json.loads((model_dir / CONFIG).read_text())
    config = meta["config"]
    model_class = meta["class"]
    params = _parameter_count(model_dir / WEIGHTS)
    prompts = config.get("prompts")
    front = {
        "license": license,
        "library_name": "wildsep",
        "pipeline_tag": "audio-to-audio",
        "tags": ["audio", "audio-source-separation", "wildsep", model_class.lower()],
    }
    io = (
        f"prompted: one output per prompt, prompts {', '.join(f'`{p}`' for p in prompts)}"
        if prompts
        else f"unconditional: {config.get('n_outputs', config.get('n_sources', '?'))} outputs"
    )
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# {repo_id}",
        "",
        f"A {model_class} sound separation model trained with wildsep and exported as "
        "`config.json` + `model.safetensors` (weights load without unpickling).",
        "",
        "## Architecture",
        "",
        f"- class: `{model_class}`, {params / 1e6:.2f} M parameters",
        f"- sample rate: {config.get('sample_rate')} Hz (any input rate is resampled)",
        f"- {io}",
        "",
        "## Config",
        "",
        "```json",
        json.dumps(config, indent=2),
        "```",
        "",
        "## Training data",
        "",
    ]
    data_lines, run_config = _training_data(run_dir)
    lines += data_lines or ["Not recorded: the pushed folder has no run config (config.yaml)."]
    if run_config is not None:
        lines += [
            "",
            "<details><summary>Run config (config.yaml)</summary>",
            "",
            "```yaml",
            run_config.strip(),
            "```",
            "",
            "</details>",
        ]
    lines += ["", "## Evaluation", ""]
    results = _evaluations(run_dir, model_dir)
    if results:
        lines += _evaluation_table(results)
        lines += [
            "",
            "Scores from `wildsep evaluate` (SI-SDR = scale-invariant SNR; the TUSS paper's "
            "protocols with `--benchmark`).",
        ]
    else:
        lines += ["No evaluation yet: run `wildsep evaluate` on the run folder before pushing."]
    lines += [
        "",
        "## Usage",
        "",
        "With wildsep installed:",
        "",
        "```bash",
        f"wildsep separate song.wav --model {repo_id} "
        + ("--prompts " + " ".join(prompts[:2]) + " " if prompts else "")
        + "--out separated/",
        "```",
        "",
        "```python",
        "from wildsep.inference import Separator",
        "",
        f'separator = Separator.from_pretrained("{repo_id}")',
        "stems = separator.separate(audio, sample_rate"
        + (f", {list(prompts[:2])!r})" if prompts else ")"),
        "```",
        "",
        "## Licence",
        "",
        f"`{license}`. The weights were learned from the training data above: check that its "
        "licences allow what you do with them.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Pushing


def stage(run_dir: str | Path, repo_id: str, license: str, folder: str | Path) -> Path:
    """Write the folder `push` uploads: config.json, model.safetensors and README.md."""
    model_dir = resolve_model_dir(run_dir)
    weights = model_dir / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{model_dir} has config.json but no {WEIGHTS}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(model_dir / CONFIG, folder / CONFIG)
    shutil.copy2(weights, folder / WEIGHTS)
    (folder / CARD).write_text(model_card(run_dir, repo_id, license))
    return folder


def push(
    run_dir: str | Path,
    repo_id: str,
    license: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload wildsep model",
) -> str:
    """Create (if needed) the hub repository `repo_id` and upload the model with its card;
    the commit URL. Uses the token of `hf auth login` / `HF_TOKEN`."""
    from huggingface_hub import HfApi

    if not is_repo_id(repo_id):
        raise CheckpointError(f"{repo_id!r} is not a hub repository id (owner/name)")
    api = HfApi()
    with tempfile.TemporaryDirectory(prefix="wildsep-push-") as tmp:
        folder = stage(run_dir, repo_id, license, tmp)
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message,
        )
    return str(getattr(commit, "commit_url", commit))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder or exported model folder")
    parser.add_argument("repo_id", metavar="ORG/NAME", help="hub repository (created if needed)")
    parser.add_argument(
        "--license",
        required=True,
        help="licence of the weights (hub id, e.g. apache-2.0, cc-by-4.0, cc-by-nc-4.0): it "
        "depends on your training data",
    )
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--revision", default=None, help="branch to push to (default main)")
    parser.add_argument(
        "--dry-run", metavar="DIR", default=None, help="write the folder to DIR; upload nothing"
    )


def run_command(args: argparse.Namespace) -> int:
    """`wildsep push`: returns the exit status."""
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    try:
        if args.dry_run:
            folder = stage(args.run_dir, args.repo_id, args.license, args.dry_run)
            print(f"wrote {folder}: {', '.join(sorted(p.name for p in folder.iterdir()))}")
            return 0
        url = push(
            args.run_dir, args.repo_id, args.license, private=args.private, revision=args.revision
        )
    except CheckpointError as err:
        print(f"wildsep: error: {err}", file=sys.stderr)
        return 2
    except (HfHubHTTPError, LocalTokenNotFoundError, OSError) as err:  # auth, network, quota
        print(
            f"wildsep: error: pushing to {args.repo_id} failed: {_first_line(err)}", file=sys.stderr
        )
        return 2
    print(f"pushed {args.run_dir} to {args.repo_id}: {url}")
    return 0
