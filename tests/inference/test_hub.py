"""Hub models, offline: `wildsep push` stages the model with its card and uploads it (the
upload is replaced by a copy into a cache laid out exactly as huggingface_hub lays it out),
then `Separator.from_pretrained("org/name")` and `wildsep separate --model org/name` load it
back with HF_HUB_OFFLINE=1. No network anywhere."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from huggingface_hub import HfApi, constants

from wildsep import cli, hub
from wildsep.evaluate import evaluate
from wildsep.inference import CheckpointError, Separator
from wildsep.models import load_pretrained

REPO = "wildsep-tests/tiny-tuss"


def publish_to_cache(folder: Path, cache: Path, repo_id: str) -> str:
    """What a download leaves in huggingface_hub's cache: models--<org>--<name>/ with
    blobs/<hash>, snapshots/<commit>/<file> → ../../blobs/<hash> and refs/main = <commit>."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    commit = hashlib.sha1(b"".join(p.read_bytes() for p in files)).hexdigest()
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        (repo / "blobs").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, repo / "blobs" / digest)
        link = repo / "snapshots" / commit / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("..", "..", "blobs", digest))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return commit


@pytest.fixture
def run_dir(tmp_path: Path, tuss_dir: Path, demo_corpus: Path) -> Path:
    """A finished run: model/, config.yaml naming prepared pools, and an evaluation."""
    run = tmp_path / "run"
    load_pretrained(tuss_dir).save_pretrained(run / "model")
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "prepare.json").write_text(
        json.dumps({"corpus": "vctk", "written": {"pools_train.csv": 42}})
    )
    config = {
        "run_dir": str(run),
        "model": {"preset": "tuss-medium", "init": "runs/mixit"},
        "data": {"pools": {"source": str(prepared / "pools_train.csv")}},
        "train": {"steps": 10},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    test_set = demo_corpus / "test" / "manifest.jsonl"
    evaluate(run, test_set, out=run / "eval_test", device="cpu", max_examples=2)
    return run


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HF_HUB_OFFLINE=1 and HF_HUB_CACHE=<tmp> for this process and its children."""
    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    # huggingface_hub reads both once, at import: point the imported constants there too.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_model_card_has_architecture_config_data_evaluation_and_licence(run_dir: Path) -> None:
    card = hub.model_card(run_dir, REPO, "cc-by-4.0")
    front = yaml.safe_load(card.split("---")[1])
    assert front == {
        "license": "cc-by-4.0",
        "library_name": "wildsep",
        "pipeline_tag": "audio-to-audio",
        "tags": ["audio", "audio-source-separation", "wildsep", "tuss"],
    }
    model = load_pretrained(run_dir / "model")
    params = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    assert f"`TUSS`, {params / 1e6:.2f} M parameters" in card
    assert '"sample_rate": 8000' in card and "`speech`, `sfx`, `sfxbg`" in card
    assert "- labeled pools: `" in card and "(`wildsep prepare vctk`, 42 rows)" in card
    assert "- initialised from `runs/mixit`" in card
    metrics = json.loads((run_dir / "eval_test" / "metrics.json").read_text())
    for task, t in metrics["summary"]["tasks"].items():
        assert f"| test | – | {task} |" in card and f"| {t['score']:.2f} |" in card
    assert "## Licence\n\n`cc-by-4.0`." in card
    assert f'Separator.from_pretrained("{REPO}")' in card


def test_push_round_trips_through_an_offline_hub_cache(
    run_dir: Path, offline_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        calls.append(
            ("upload_folder", repo_id, sorted(p.name for p in Path(folder_path).iterdir()))
        )
        publish_to_cache(Path(folder_path), offline_cache, repo_id)
        return "https://hub/commit/1"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    assert cli.main(["push", str(run_dir), REPO, "--license", "apache-2.0", "--private"]) == 0
    assert calls == [
        ("create_repo", REPO, {"private": True, "exist_ok": True}),
        ("upload_folder", REPO, ["README.md", "config.json", "model.safetensors"]),
    ]
    assert f"pushed {run_dir} to {REPO}" in capsys.readouterr().out

    local = Separator.from_pretrained(run_dir, device="cpu")
    remote = Separator.from_pretrained(REPO, device="cpu")
    audio = np.random.default_rng(0).standard_normal((1, 4000)).astype(np.float32)
    prompts = ["speech", "speech", "sfx"]
    np.testing.assert_array_equal(
        remote.separate(audio, 8000, prompts), local.separate(audio, 8000, prompts)
    )
    snapshot = hub.resolve_pretrained(REPO)
    assert snapshot.parent.parent == offline_cache / "models--wildsep-tests--tiny-tuss"
    assert "license: apache-2.0" in (snapshot / "README.md").read_text()


@pytest.mark.slow
def test_separate_command_takes_a_hub_id_offline(
    tmp_path: Path, tuss_dir: Path, offline_cache: Path
) -> None:
    publish_to_cache(tuss_dir, offline_cache, REPO)
    clip = tmp_path / "clip.wav"
    sf.write(str(clip), 0.1 * np.random.default_rng(1).standard_normal(8000), 16000)
    out = tmp_path / "sep"
    command = [sys.executable, "-m", "wildsep.cli", "separate", str(clip), "--model", REPO]
    command += ["--prompts", "speech", "sfxbg", "--out", str(out), "--device", "cpu"]
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "clip").iterdir()) == ["sfxbg.wav", "speech.wav"]


def test_missing_hub_models_are_one_line_errors(
    tmp_path: Path, offline_cache: Path, run_dir: Path, capsys, monkeypatch
) -> None:
    with pytest.raises(CheckpointError) as error:
        Separator.from_pretrained("nobody/nothing", device="cpu")
    message = str(error.value)
    assert "hub repository nobody/nothing is not in the hub cache" in message
    assert "offline mode (HF_HUB_OFFLINE)" in message and "\n" not in message

    clip = tmp_path / "clip.wav"
    sf.write(str(clip), np.zeros(800) + 0.1, 8000)
    args = ["separate", str(clip), "--model", "nobody/nothing", "--out", str(tmp_path / "o")]
    assert cli.main(args) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1

    # A local folder always wins over a hub id of the same spelling.
    monkeypatch.chdir(tmp_path)
    shutil.copytree(run_dir / "model", tmp_path / "nobody" / "nothing")
    assert hub.resolve_pretrained("nobody/nothing") == Path("nobody/nothing")
    assert Separator.from_pretrained("nobody/nothing", device="cpu").prompts is not None


def test_push_dry_run_writes_the_upload_and_needs_a_licence(run_dir, tmp_path, capsys) -> None:
    staged = tmp_path / "staged"
    assert cli.main(["push", str(run_dir), REPO, "--license", "mit", "--dry-run", str(staged)]) == 0
    assert sorted(p.name for p in staged.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    model = run_dir / "model"
    assert (staged / "model.safetensors").read_bytes() == (model / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit):
        cli.main(["push", str(run_dir), REPO])  # argparse: --license is required
    assert "--license" in capsys.readouterr().err
    assert (
        cli.main(
            ["push", str(tmp_path / "none"), REPO, "--license", "mit", "--dry-run", str(staged)]
        )
        == 2
    )
