"""A mined manifest round-trips into training: remix examples, loaders, and the recipes."""

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from wildsep.data import (
    ClipConfig,
    CorpusConfig,
    DataConfig,
    MiningConfig,
    RemixDataset,
    build_corpus_index,
    build_remix_loader,
    load_span,
    mine_corpus,
    read_mined,
)
from wildsep.engine import Stage
from wildsep.models import PresenceClassifier, PresenceConfig
from wildsep.objectives import SemiSupConfig, SemiSupervisedObjective, with_remix_batches
from wildsep.objectives.tuss import TUSSObjective, TUSSObjectiveConfig

ROOT = Path(__file__).resolve().parents[2]
RATE = 8000
TINY_PRESENCE = dict(n_mels=16, channels=8, conv_blocks=2, dim=16, context_blocks=1)


@pytest.fixture
def mined(demo_corpus, tmp_path) -> Path:
    """Every 1 s segment of the demo's unlabeled clips, mined by an untrained classifier at a
    confidence so low that P ≈ 0.5 passes."""
    torch.manual_seed(0)
    model = PresenceClassifier(PresenceConfig(classes=["speech", "sfx"], **TINY_PRESENCE))
    source = CorpusConfig(source=str(demo_corpus / "unlabeled"), cache_dir=str(tmp_path / "c"))
    manifest = tmp_path / "mined" / "mined.jsonl"
    config = MiningConfig(segment_seconds=1.0, confidence=0.01)
    mine_corpus(model, source, manifest, config, progress=False)
    return manifest


@pytest.fixture
def pools(demo_corpus, tmp_path):
    return build_corpus_index(
        demo_corpus / "pools", class_from_folder=True, cache_dir=tmp_path / "c", progress=False
    )


def test_remix_examples_come_from_the_mined_segments(mined, pools):
    segments = read_mined(mined)
    assert len(segments) >= 8 and {s.absent for s in segments} == {"speech", "sfx"}
    clips = ClipConfig(sample_rate=RATE, duration=0.5)
    dataset = RemixDataset(segments, pools, clips, gain_db=[-6.0, -6.0], seed=0)
    order = dataset._order(0)
    audible = 0
    for i in range(4):
        item = dataset[(0, i)]
        segment = segments[int(order[i])]
        refs = item["references"]
        assert refs.shape == (2, 4000) and item["mixture"].shape == (4000,)
        torch.testing.assert_close(item["mixture"], refs.sum(0))
        assert item["prompts"] == [segment.absent, "rest"]
        rms = refs.pow(2).mean(-1).sqrt()
        # x_u at unit RMS; g·s_i at −6 dB (or silent, when every crop drawn from a sparse sfx
        # pool clip was: the pool sampler gives up after `max_attempts`)
        assert rms[1].item() == pytest.approx(1.0, rel=1e-3)
        assert rms[0].item() == pytest.approx(10 ** (-6 / 20), rel=1e-3) or rms[0] == 0
        audible += rms[0] > 0
        # x_u is a crop of the mined segment: find it there by normalised cross-correlation
        whole = load_span(segment.path, segment.start, RATE, RATE)[0].astype(np.float64)
        crop = refs[1].double().numpy()
        scores = [
            np.dot(whole[o : o + 4000], crop)
            / (np.linalg.norm(whole[o : o + 4000]) * np.linalg.norm(crop) + 1e-12)
            for o in range(0, RATE - 4000 + 1)
        ]
        assert max(scores) > 0.999
        torch.testing.assert_close(dataset[(0, i)]["references"], refs)  # keyed, reproducible
    assert audible >= 3
    assert not torch.equal(dataset[(1, 0)]["references"], dataset[(0, 0)]["references"])


def test_remix_dataset_refuses_what_it_cannot_use(mined, pools):
    segments = read_mined(mined)
    with pytest.raises(ValueError, match=r"shorter than clips\.duration"):
        RemixDataset(segments, pools, ClipConfig(sample_rate=RATE, duration=2.0))
    speechless = pools.dataset.filter(lambda row: row["class"] != "speech")
    with pytest.raises(ValueError, match=r"mined classes \['speech'\] have no labeled pool"):
        RemixDataset(segments, speechless, ClipConfig(sample_rate=RATE, duration=0.5))
    assert len(read_mined(mined, classes=["sfx"])) == sum(s.absent == "sfx" for s in segments)
    assert read_mined(mined, min_confidence=0.99) == []


def test_remix_loader_and_interleaving_feed_a_training_loop(mined, pools, demo_corpus):
    clips = ClipConfig(sample_rate=RATE, duration=0.5)
    dataset = RemixDataset(read_mined(mined), pools, clips, seed=0)
    loader, _ = build_remix_loader(dataset, 3)
    batch = next(iter(loader))
    assert batch["kind"] == "remix" and batch["references"].shape == (3, 2, 4000)
    assert len(batch["prompts"]) == 3 and all(p[1] == "rest" for p in batch["prompts"])

    data = DataConfig(batch_size=2, num_workers=0, clips=clips)
    config = SemiSupConfig(manifest=str(mined), ratio=0.5, background_prompt="other")

    def supervised(position):
        for p in itertools.count(position):
            yield {"mixture": torch.zeros(2, 4000), "position": p}

    tuss = Stage("tuss", TUSSObjective(TUSSObjectiveConfig()), 10)
    with pytest.raises(ValueError, match=r"prompts \['other'\] that the model lacks"):
        with_remix_batches(
            config,
            data,
            [tuss],
            supervised,
            conditional=True,
            prompts=["speech", "sfx"],
            pools=pools,
        )
    stages, batches = with_remix_batches(
        config,
        data,
        [tuss],
        supervised,
        conditional=True,
        prompts=["speech", "sfx", "other"],
        pools=pools,
    )
    assert isinstance(stages[0].objective, SemiSupervisedObjective) and stages[0].steps == 10
    stream = list(itertools.islice(batches(3), 4))  # positions 3..6 at ratio 1/2
    assert [b.get("kind") for b in stream] == ["remix", None, "remix", None]
    assert [b["position"] for b in stream[1::2]] == [2, 3]
    assert stream[0]["prompts"][0][1] == "other"
    off = SemiSupConfig(manifest=None)
    assert with_remix_batches(off, data, [tuss], supervised, conditional=True)[1] is supervised


def tiny(prefix: str, geometry: dict) -> list[str]:
    return [f"{prefix}.{k}={v}" for k, v in geometry.items()]


@pytest.mark.slow
def test_the_scheme_runs_end_to_end_from_the_demo_configs(demo_corpus, tmp_path):
    """presence classifier → miner → TUSS fine-tuning and MixIT pre-training with remixes."""
    from finetune.tuss import main as finetune
    from pretrain.mine import main as mine
    from pretrain.presence import main as train_presence
    from pretrain.run import main as pretrain

    cache = tmp_path / "cache"
    presence = [
        str(ROOT / "configs" / "demo_presence.yaml"),
        f"run_dir={tmp_path / 'presence'}",
        f"data.pools.source={demo_corpus / 'pools'}",
        f"data.pools.cache_dir={cache}",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.clips.duration=1.0",
        "train.max_steps=2",
        "train.val_every=2",
        "validation.batches=1",
        f"mining.corpus.source={demo_corpus / 'unlabeled'}",
        f"mining.corpus.cache_dir={cache}",
        "mining.segment_seconds=1.0",
        "mining.confidence=0.05",  # an untrained classifier: keep nearly everything
        *tiny("model", TINY_PRESENCE),
    ]
    run = train_presence(presence)
    assert (run / "model" / "config.json").is_file()
    report = mine(presence)
    manifest = tmp_path / "presence" / "mined.jsonl"
    assert report.manifest == manifest.resolve() and sum(report.segments.values()) > 0

    geometry = dict(n_fft=128, hop=64, dim=16, cross_attn_dim=16, tse_attn_dim=16)
    common = [
        f"data.pools.source={demo_corpus / 'pools'}",
        f"data.pools.cache_dir={cache}",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.clips.duration=0.5",
        "train.max_steps=4",
        "train.log_every=1",
        "train.val_every=0",
        "train.checkpoint_every=4",
        f"semisup.manifest={manifest}",
        "semisup.min_confidence=0.0",
    ]
    tuss = finetune(
        [
            str(ROOT / "configs" / "demo_semisup.yaml"),
            f"run_dir={tmp_path / 'tuss'}",
            "validation.manifest=null",
            "train.average_last=0",
            *common,
            *tiny("model.overrides", geometry),
        ]
    )
    events = EventAccumulator(str(next((tuss / "tensorboard").glob("events.*")))).Reload()
    tags = events.Tags()["scalars"]
    assert {"train/weak_source", "train/weak_background", "train/remix_batches"} <= set(tags)
    # ratio 1/2 and log_every 1: steps alternate supervised, remix
    assert [e.value for e in events.Scalars("train/remix_batches")] == [0.0, 1.0, 0.0, 1.0]
    assert (tuss / "model" / "model.safetensors").is_file()

    backbone = pretrain(
        [
            str(ROOT / "configs" / "demo_pretrain.yaml"),
            f"run_dir={tmp_path / 'pretrain'}",
            f"data.corpus.source={demo_corpus / 'unlabeled'}",
            f"data.corpus.cache_dir={cache}",
            "stages.0.steps=4",
            "validation.manifest=null",
            "validation.mom_batches=1",
            "semisup.assignment=group",
            *common,
            *tiny("model.overrides", geometry),
        ]
    )
    events = EventAccumulator(str(next((backbone / "tensorboard").glob("events.*")))).Reload()
    # the default ratio 1/4: the fourth step is the first remix
    assert [e.value for e in events.Scalars("train/remix_batches")] == [0.0, 0.0, 0.0, 1.0]
    assert {"train/mixit", "train/weak_source"} <= set(events.Tags()["scalars"])
