"""Demucs through the pre-training recipe: the MUSDB config on a fake stereo tree (exact resume,
per-stem validation, export, `wildsep separate`), stereo MixIT, fixed stems with mined remixes,
and the start-up refusals when model and data disagree."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from pretrain.config import PretrainConfig, check_stages
from pretrain.run import main
from wildsep.config import ConfigError, load_config
from wildsep.models import Demucs, load_pretrained

ROOT = Path(__file__).resolve().parents[2]
MUSDB = str(ROOT / "configs" / "demucs_musdb.yaml")
DEMO = str(ROOT / "configs" / "demo_demucs.yaml")
STEMS = ("drums", "bass", "vocals", "other")
TINY = ["model.overrides.channels=4", "model.overrides.depth=2", "model.overrides.lstm_layers=1"]


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def fake_musdb(root: Path, rate: int = 44100) -> Path:
    """train/ (3 tracks) and valid/ (1 track) of 0.6 s stereo stems with different content."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("valid", 1)):
        for track in range(count):
            folder = root / split / f"Artist - Song {track}"
            folder.mkdir(parents=True)
            stems = [rng.normal(0, 0.1, (round(0.6 * rate), 2)).astype(np.float32) for _ in STEMS]
            for name, audio in zip(STEMS, stems, strict=True):
                sf.write(folder / f"{name}.wav", audio, rate, "FLOAT")
            sf.write(folder / "mixture.wav", sum(stems), rate, "FLOAT")
    return root


def musdb_args(tmp_path: Path, run: str, steps: int) -> list[str]:
    return [
        MUSDB,
        f"run_dir={tmp_path / run}",
        *TINY,
        "data.batch_size=2",
        "data.num_workers=0",
        "data.clips.duration=0.3",
        "data.augment.shift_seconds=0.05",
        f"train.max_steps={steps}",
        "train.log_every=1",
        "train.val_every=2",
        "train.checkpoint_every=2",
        "stages.0.steps=4",
        "validation.mom_batches=1",
    ]


@pytest.mark.slow
def test_musdb_config_trains_on_a_stems_tree_resumes_exactly_and_separates(tmp_path, monkeypatch):
    from wildsep.cli import main as cli

    monkeypatch.setenv("WILDSEP_MUSDB", str(fake_musdb(tmp_path / "musdb")))
    straight = main(musdb_args(tmp_path, "a", 4))
    main(musdb_args(tmp_path, "b", 2))
    resumed = main([*musdb_args(tmp_path, "b", 4), "train.resume=true"])
    loss = {r["step"]: r["loss"] for r in records(straight) if "lr" in r}
    assert len(loss) == 4 and {"loss_drums", "loss_other"} <= set(records(straight)[0])
    assert {r["step"]: r["loss"] for r in records(resumed) if "lr" in r} == pytest.approx(loss)
    final = load_file(resumed / "model" / "model.safetensors")
    for name, value in load_file(straight / "model" / "model.safetensors").items():
        assert torch.equal(final[name], value), name
    validation = next(r for r in records(straight) if "val/loss" in r)
    for stem in STEMS:  # held-out track of valid/: per-stem SNR, SI-SNR, BSS-eval SDR
        assert {f"val/snr/{stem}", f"val/si_snr/{stem}", f"val/sdr/{stem}"} <= set(validation)

    model = load_pretrained(straight / "model")
    assert isinstance(model, Demucs) and model.config.sources == STEMS
    assert model.config.audio_channels == 2 and model.config.sample_rate == 44100
    song = tmp_path / "song.wav"
    sf.write(song, np.random.default_rng(1).normal(0, 0.1, (22050, 2)), 44100, "FLOAT")
    assert cli(["separate", str(song), "--model", str(straight), "--out", str(tmp_path / "o")]) == 0
    for stem in STEMS:
        info = sf.info(str(tmp_path / "o" / "song" / f"{stem}.wav"))
        assert (info.samplerate, info.frames, info.channels) == (44100, 22050, 2)


def mixit_config(tmp_path: Path, corpus: Path) -> Path:
    """A stereo MixIT run of a 4-output demucs-small (outputs unnamed)."""
    config = {
        "run_dir": str(tmp_path / "mixit"),
        "model": {
            "preset": "demucs-small",
            "overrides": {"sample_rate": 8000, "sources": [], "channels": 4, "depth": 2},
        },
        "data": {
            "batch_size": 2,
            "num_workers": 0,
            "corpus": {"source": str(corpus / "unlabeled"), "cache_dir": str(tmp_path / "c")},
            "clips": {"sample_rate": 8000, "duration": 0.5, "channels": "stereo"},
            "augment": {"flip_channels_prob": 0.5, "flip_sign_prob": 0.5},
        },
        "train": {"max_steps": 2, "log_every": 1, "val_every": 2, "checkpoint_every": 2},
        "stages": [{"name": "mixit", "objective": "mixit", "steps": 2}],
        "validation": {"mom_batches": 1},
    }
    path = tmp_path / "mixit.yaml"
    OmegaConf.save(OmegaConf.create(config), path)
    return path


@pytest.mark.slow
def test_stereo_mixit_trains_an_unconditional_demucs(tmp_path, demo_corpus):
    run = main([str(mixit_config(tmp_path, demo_corpus))])
    steps = [r for r in records(run) if "lr" in r]
    assert len(steps) == 2 and all(np.isfinite(r["mixit"]) for r in steps)
    validation = next(r for r in records(run) if "val/momi" in r)
    assert np.isfinite(validation["val/loss"])
    model = load_pretrained(run / "model")
    assert isinstance(model, Demucs) and model.config.sources == ()
    assert model(torch.randn(3, 2, 4000)).shape == (3, 4, 2, 4000)


def write_mined(tmp_path: Path, corpus: Path) -> Path:
    """Segments of the demo's unlabeled clips said to lack vocals or bass (the mining itself is
    tested in tests/semisup)."""
    rows = []
    for i, path in enumerate(sorted((corpus / "unlabeled").glob("*.wav"))[:4]):
        info = sf.info(str(path))
        for absent in ("vocals", "bass"):
            rows.append(
                {
                    "path": str(path),
                    "start": 0,
                    "frames": info.frames,
                    "sample_rate": info.samplerate,
                    "absent": absent,
                    "confidence": 0.9 - 0.1 * i,
                }
            )
    manifest = tmp_path / "mined.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return manifest


@pytest.mark.slow
def test_fixed_stems_with_mined_remixes_score_the_output_of_the_absent_stem(tmp_path, demo_corpus):
    run = main(
        [
            DEMO,
            f"run_dir={tmp_path / 'semisup'}",
            *TINY,
            f"data.pools.source={demo_corpus / 'pools'}",
            f"data.pools.cache_dir={tmp_path / 'c'}",
            "data.batch_size=2",
            "data.num_workers=0",
            "data.clips.duration=0.5",
            "train.max_steps=4",
            "train.log_every=1",
            "train.val_every=4",
            "train.checkpoint_every=4",
            "stages.0.steps=4",
            "validation.stems=null",  # held-out pool mixtures instead
            "validation.mom_batches=1",
            f"semisup.manifest={write_mined(tmp_path, demo_corpus)}",
            "semisup.ratio=0.5",
            "semisup.assignment=named",
        ]
    )
    steps = [r for r in records(run) if "lr" in r]
    assert [r["remix_batches"] for r in steps] == [0.0, 1.0, 0.0, 1.0]
    assert all(np.isfinite(r["weak_source"]) for r in steps if r["remix_batches"])
    assert all("loss_drums" in r for r in steps if not r["remix_batches"])
    validation = next(r for r in records(run) if "val/loss" in r)
    assert validation["val/loss"] == validation["val/stems_loss"]
    assert isinstance(load_pretrained(run / "model"), Demucs)


def check(*overrides: str) -> None:
    config = load_config(PretrainConfig, DEMO, ["data.pools.source=/data/pools", *TINY, *overrides])
    check_stages(config)


def test_the_demo_config_passes_the_start_up_checks():
    check()


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.clips.channels=stereo"], "takes 1-channel audio but data.clips.channels=stereo"),
        (["model.overrides.audio_channels=2"], "takes 2-channel audio but data.clips.channels"),
        (
            [
                "model.overrides.audio_channels=2",
                "data.clips.channels=stereo",
                "validation.manifest=m.jsonl",
            ],
            "scored on mono mixtures",
        ),
        (
            ["model.overrides.n_outputs=3", "model.overrides.sources=[a,b,c]"],
            r"4 stems \['drums', 'bass', 'vocals', 'other'\] but the model has 3 outputs",
        ),
        (["stages.0.stems.stems=[bass,drums,vocals,other]"], "names its outputs"),
        (["data.pools.source=''"], "data.stems.source"),
    ],
)
def test_model_and_data_that_disagree_fail_at_start(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check(*overrides)


def test_named_remix_assignment_needs_every_mined_class_to_name_an_output(tmp_path, demo_corpus):
    from wildsep.data import DataConfig
    from wildsep.objectives import SemiSupConfig, with_remix_batches

    data = DataConfig()
    data.pools.source, data.pools.cache_dir = str(demo_corpus / "pools"), str(tmp_path)
    config = SemiSupConfig(manifest=str(write_mined(tmp_path, demo_corpus)), assignment="named")
    with pytest.raises(ValueError, match=r"classes \['bass'\] name no output"):
        with_remix_batches(
            config, data, [], lambda p: iter(()), conditional=False, outputs=["vocals", "drums"]
        )


def test_a_tuple_in_the_config_equals_the_list_its_yaml_holds():
    """The stems are a tuple in StemsObjectiveConfig and a list in the saved config.yaml: a
    resumed run must not see that as a changed setting, but a changed stem is one."""
    from wildsep.engine import config_changes

    assert config_changes({"stems": ["drums", "bass"]}, {"stems": ("drums", "bass")}) == {}
    assert config_changes({"stems": ["drums", "bass"]}, {"stems": ("drums", "other")}) == {
        "stems.1": ("bass", "other")
    }
