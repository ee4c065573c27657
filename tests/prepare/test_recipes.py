"""Every corpus recipe on a fake tree laid out as the real corpus: what lands in which pool,
manifest or evaluation set with which class; bad and missing files reported, never fatal;
nothing written into the corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wildsep import cli
from wildsep.data.evalset import EvalSetDataset
from wildsep.data.index import build_corpus_index
from wildsep.prepare import PrepareError, prepare

from .conftest import Tree, read_csv, read_jsonl, rel


def run(corpus: str, tree: Tree, out: Path, **options: str) -> dict:
    """Prepare and check that the corpus tree is exactly as it was."""
    before = tree.fingerprint()
    summary = prepare(corpus, tree.root, out, options, workers=2)
    assert tree.fingerprint() == before
    return summary


def pools(out: Path, split: str, root: Path) -> list[tuple[str, str, str]]:
    return [
        (rel(r["path"], root), r["class"], r["label"]) for r in read_csv(out / f"pools_{split}.csv")
    ]


def skipped(out: Path, root: Path) -> dict[str, str]:
    return {
        (rel(r["path"], root) if r["path"].startswith("/") else r["path"]): r["reason"]
        for r in read_csv(out / "skipped.csv")
    }


def sets(out: Path, name: str, root: Path) -> list[tuple[str, list[str], list[str], str]]:
    """(name, references relative to the corpus, classes, mixture) per line."""
    return [
        (
            row["name"],
            [rel(r, root) for r in row["references"]],
            row["classes"],
            rel(row["mixture"], root) if "mixture" in row else "",
        )
        for row in read_jsonl(out / f"{name}.jsonl")
    ]


# ---------------------------------------------------------------------------------------------
# Sound events and ambiences


def test_fuss_sets_unlabeled_mixtures_and_sfx_pools(tree: Tree, tmp_path: Path) -> None:
    base = "fuss_dev/ssdata_reverb"
    lists = {}
    for split, n_sources in (("train", [2, 1]), ("validation", [1, 3]), ("eval", [4, 2])):
        lines = []
        for i, count in enumerate(n_sources):
            ex = f"{split}/example{i:05d}"
            tree.wav(f"{base}/{ex}.wav", 16000)
            kinds = ["background0"] + [f"foreground{k}" for k in range(count - 1)]
            srcs = [f"{ex}_sources/{k}_sound.wav" for k in kinds]
            for s in srcs:
                tree.wav(f"{base}/{s}", 16000)
            lines.append("\t".join([f"{ex}.wav", *srcs]))
        lists[split] = lines
    lists["eval"].append("eval/example00002.wav\teval/example00002_sources/background0_sound.wav")
    tree.corrupt(f"{base}/eval/example00001_sources/foreground0_sound.wav")
    for split, lines in lists.items():
        tree.text(f"{base}/{split}_example_list.txt", "\n".join(lines) + "\n")
    tree.wav("fuss_dev/ssdata/train/example00000.wav", 16000)  # the dry version: not chosen

    out = tmp_path / "out"
    summary = run("fuss", tree, out)
    root = tree.root
    assert [rel(r["path"], root) for r in read_csv(out / "unlabeled_train.csv")] == [
        f"{base}/train/example00000.wav",
        f"{base}/train/example00001.wav",
    ]
    assert pools(out, "train", root) == [
        (f"{base}/train/example00000_sources/background0_sound.wav", "sfx", "background"),
        (f"{base}/train/example00000_sources/foreground0_sound.wav", "sfx", "foreground"),
        (f"{base}/train/example00001_sources/background0_sound.wav", "sfx", "background"),
    ]
    validation = sets(out, "fuss_validation", root)
    assert [(n, c) for n, _, c, _ in validation] == [
        ("example00000", ["sfx"]),
        ("example00001", ["sfx"] * 3),
    ]
    # eval: example 1 has a corrupt source (dropped whole), example 2 is listed but absent.
    assert [(n, len(r)) for n, r, _, _ in sets(out, "fuss_eval", root)] == [("example00000", 4)]
    reasons = skipped(out, root)
    assert "unreadable" in reasons[f"{base}/eval/example00001_sources/foreground0_sound.wav"]
    assert reasons["example00001"].startswith("evaluation mixture dropped")
    assert reasons[f"{base}/eval/example00002.wav"].startswith("missing")
    assert summary["written"]["fuss_eval.jsonl"] == 1
    item = EvalSetDataset(out / "fuss_eval.jsonl", 16000)[0]  # the project reads the set
    assert item["references"].shape[0] == 4 and item["classes"] == ["sfx"] * 4


def test_fsd50k_sfx_pools_by_split_without_speech_or_music(tree: Tree, tmp_path: Path) -> None:
    tree.text(
        "FSD50K.ground_truth/dev.csv",
        "fname,labels,mids,split\n"
        '64760,"Electric_guitar,Guitar,Plucked_string_instrument,Musical_instrument,Music",'
        '"/m/02sgy,/m/0342h,/m/0fx80y,/m/04szw,/m/04rlf",train\n'
        '16399,"Slam,Door,Domestic_sounds_and_home_sounds","/m/07rjzl8,/m/02dgv,/t/dd00071",train\n'
        '16401,"Dog,Domestic_animals_and_pets,Animal","/m/0bt9lr,/m/068hy,/m/0jbk",val\n'
        '99999,"Female_speech_and_woman_speaking,Speech,Human_voice","/m/02zsn,/m/09x0r,/m/09l8g",train\n'
        '12345,"Rain,Water","/m/06mb1,/m/0838f",train\n',
    )
    tree.text(
        "FSD50K.ground_truth/eval.csv",
        'fname,labels,mids\n37199,"Bark,Dog,Animal","/m/05tny_,/m/0bt9lr,/m/0jbk"\n',
    )
    tree.text(
        "FSD50K.ground_truth/vocabulary.csv", "0,Accelerating_and_revving_and_vroom,/m/07q2z82\n"
    )
    for fname in (64760, 16399, 16401, 99999):
        tree.wav(f"FSD50K.dev_audio/{fname}.wav", 44100)
    tree.wav("FSD50K.eval_audio/37199.wav", 44100)  # 12345.wav was never downloaded

    out = tmp_path / "out"
    summary = run("fsd50k", tree, out)
    root = tree.root
    assert pools(out, "train", root) == [
        ("FSD50K.dev_audio/16399.wav", "sfx", "Slam,Door,Domestic_sounds_and_home_sounds")
    ]
    assert [p for p, _, _ in pools(out, "valid", root)] == ["FSD50K.dev_audio/16401.wav"]
    assert [p for p, _, _ in pools(out, "test", root)] == ["FSD50K.eval_audio/37199.wav"]
    assert summary["excluded"] == {"speech or music label": 2}
    assert "unreadable" in skipped(out, root)["FSD50K.dev_audio/12345.wav"]


def test_demand_environments_as_sfxbg(tree: Tree, tmp_path: Path) -> None:
    for env in ("DKITCHEN", "NPARK", "TBUS"):
        for ch in range(1, 17):
            tree.wav(f"{env}/ch{ch:02d}.wav", 16000)
    tree.corrupt("TBUS/ch01.wav")
    out = tmp_path / "out"
    run("demand", tree, out)
    assert pools(out, "train", tree.root) == [
        ("DKITCHEN/ch01.wav", "sfxbg", "DKITCHEN"),
        ("NPARK/ch01.wav", "sfxbg", "NPARK"),
    ]
    assert "TBUS/ch01.wav" in skipped(out, tree.root)
    run("demand", tree, out, channels="all")  # a rerun into its own folder is allowed
    assert len(read_csv(out / "pools_train.csv")) == 16 + 16 + 15


def test_audioset_clips_matched_to_segment_lists(tree: Tree, tmp_path: Path) -> None:
    header = "# Segments csv created Sun Mar  5 10:54:31 2017\n# num_ytids=3\n"
    header += "# YTID, start_seconds, end_seconds, positive_labels\n"
    tree.text(
        "balanced_train_segments.csv",
        header + '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"\n'
        '--ZhevVpy1s, 50.000, 60.000, "/m/012xff"\n'
        'a_b-c_d-e_f, 0.000, 10.000, "/m/012xff"\n',
    )
    tree.text("eval_segments.csv", header + '-0RWZT-miFs, 420.000, 430.000, "/m/03v3yw"\n')
    tree.text(
        "class_labels_indices.csv",
        'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/t/dd00088,"Gush"\n2,/m/012xff,"Toothbrush"\n'
        '3,/m/03v3yw,"Keys jangling"\n',
    )
    tree.wav("audio/balanced/Y--PJHxphWEs.wav", 16000)  # PANNs-style name
    tree.wav("audio/balanced/a_b-c_d-e_f_0.000.flac", 32000, format="FLAC")
    tree.wav("audio/eval/-0RWZT-miFs_420000_430000.wav", 16000)
    tree.wav("audio/other/not_in_a_list.wav", 16000)
    tree.wav("audio/.hidden/--ZhevVpy1s.wav", 16000)  # hidden folders are not audio

    out = tmp_path / "out"
    run("audioset", tree, out)
    train = read_csv(out / "unlabeled_train.csv")
    assert [(rel(r["path"], tree.root), r["labels"]) for r in train] == [
        ("audio/balanced/Y--PJHxphWEs.wav", "Speech,Gush"),
        ("audio/balanced/a_b-c_d-e_f_0.000.flac", "Toothbrush"),
    ]
    assert train[0]["start"] == "30.000" and train[0]["ytid"] == "--PJHxphWEs"
    assert [r["ytid"] for r in read_csv(out / "unlabeled_eval.csv")] == ["-0RWZT-miFs"]
    reasons = skipped(out, tree.root)
    assert reasons["audio/other/not_in_a_list.wav"] == "not in any AudioSet segment list"
    assert reasons["balanced_train_segments.csv:--ZhevVpy1s"].startswith("missing")


def test_yfcc_folder_of_clips_without_lists(tree: Tree, tmp_path: Path) -> None:
    tree.wav("0/00/0000a1b2c3.flac", 44100, channels=2, format="FLAC")
    tree.wav("7/f3/7f3e9d.wav", 48000)
    tree.corrupt("7/f3/7f3e9e.wav")
    (tree.root / "7/f3/7f3e9f.wav").write_bytes(b"")
    tree.text("README.txt", "not audio")
    out = tmp_path / "out"
    run("yfcc100m", tree, out)
    assert [rel(r["path"], tree.root) for r in read_csv(out / "unlabeled_train.csv")] == [
        "0/00/0000a1b2c3.flac",
        "7/f3/7f3e9d.wav",
    ]
    reasons = skipped(out, tree.root)
    assert "unreadable" in reasons["7/f3/7f3e9e.wav"] and "empty" in reasons["7/f3/7f3e9f.wav"]


# ---------------------------------------------------------------------------------------------
# Speech


def test_vctk_speech_pool_without_voicebank_test_speakers(tree: Tree, tmp_path: Path) -> None:
    for spk in ("p225", "p232", "s5"):
        for n in (1, 2):
            for mic in (1, 2):
                tree.wav(
                    f"wav48_silence_trimmed/{spk}/{spk}_{n:03d}_mic{mic}.flac", 48000, format="FLAC"
                )
        tree.text(f"txt/{spk}/{spk}_001.txt", "Please call Stella.\n")
    tree.text(
        "speaker-info.txt",
        "ID  AGE  GENDER  ACCENTS  REGION COMMENTS\np225  23  F  English  Southern England\n",
    )
    tree.text("wav48_silence_trimmed/log.txt", "not a speaker")
    out = tmp_path / "out"
    summary = run("vctk", tree, out)
    assert pools(out, "train", tree.root) == [
        (f"wav48_silence_trimmed/{s}/{s}_{n:03d}_mic1.flac", "speech", s)
        for s in ("p225", "s5")
        for n in (1, 2)
    ]
    assert summary["excluded"] == {"VoiceBank-DEMAND test speaker p232": 1}
    run("vctk", tree, tmp_path / "mic2", mic="mic2", **{"test-speakers": "keep"})
    assert len(read_csv(tmp_path / "mic2" / "pools_train.csv")) == 6


def test_voicebank_demand_test_set_with_derived_noise(tree: Tree, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("p232_001", "p232_002", "p257_001"):
        clean = 0.3 * rng.standard_normal(2400)
        noise = rng.uniform(0.01, 0.2) * rng.standard_normal(2400)
        tree.wav(f"clean_testset_wav/{name}.wav", 48000, audio=clean, subtype="PCM_16")
        tree.wav(f"noisy_testset_wav/{name}.wav", 48000, audio=clean + noise, subtype="PCM_16")
    tree.wav("clean_testset_wav/p257_002.wav", 48000)  # its noisy file is missing
    tree.wav("clean_trainset_28spk_wav/p226_001.wav", 48000)
    tree.wav("noisy_trainset_28spk_wav/p226_001.wav", 48000)
    tree.text("testset_txt/p232_001.txt", "Please call Stella.\n")
    out = tmp_path / "out"
    run("voicebank-demand", tree, out)
    rows = read_jsonl(out / "voicebank-demand_test.jsonl")
    assert [r["name"] for r in rows] == ["p232_001", "p232_002", "p257_001"]
    assert all(r["classes"] == ["speech", "sfxbg"] for r in rows)
    for row in rows:
        noisy, _ = sf.read(row["mixture"], dtype="float32")
        clean, _ = sf.read(row["references"][0], dtype="float32")
        noise, rate = sf.read(row["references"][1], dtype="float32")
        assert Path(row["references"][1]).is_relative_to(out / "derived")
        assert rate == 48000 and np.array_equal(clean + noise, noisy)  # exact, not close
    assert skipped(out, tree.root)["noisy_testset_wav/p257_002.wav"].startswith("missing")
    assert pools(out, "train", tree.root) == [
        ("clean_trainset_28spk_wav/p226_001.wav", "speech", "p226")
    ]


def test_librispeech_speech_pools_by_split(tree: Tree, tmp_path: Path) -> None:
    for subset in ("train-clean-100", "dev-clean", "test-other"):
        for spk, chap in (("19", "198"), ("103", "1240")):
            for utt in (0, 1):
                tree.wav(
                    f"LibriSpeech/{subset}/{spk}/{chap}/{spk}-{chap}-{utt:04d}.flac",
                    16000,
                    format="FLAC",
                )
            tree.text(f"LibriSpeech/{subset}/{spk}/{chap}/{spk}-{chap}.trans.txt", "0000 HELLO\n")
    tree.text(
        "LibriSpeech/SPEAKERS.TXT",
        ";ID  |SEX| SUBSET |MINUTES| NAME\n19 | F | train-clean-100 | 25.19 | Kara\n",
    )
    tree.corrupt("LibriSpeech/dev-clean/19/198/19-198-0001.flac")
    out = tmp_path / "out"
    run("librispeech", tree, out)
    train = pools(out, "train", tree.root)
    assert len(train) == 4 and {c for _, c, _ in train} == {"speech"}
    assert {label for _, _, label in train} == {"19", "103"}
    assert (
        len(read_csv(out / "pools_valid.csv")) == 3 and len(read_csv(out / "pools_test.csv")) == 4
    )


def _mix_tree(tree: Tree, base: str, splits: dict[str, int], speakers: int, rate: int) -> None:
    for split, count in splits.items():
        for i in range(count):
            name = f"{i:02d}1a010b_0.97482_20ga010p_-0.97482.wav"
            for folder in (
                "mix_both",
                "mix_clean",
                "mix_single",
                *[f"s{k + 1}" for k in range(speakers)],
                "noise",
            ):
                tree.wav(f"{base}/{split}/{folder}/{name}", rate)


def test_wham_sets_and_training_pools(tree: Tree, tmp_path: Path) -> None:
    _mix_tree(tree, "wham_mix/wav16k/min", {"tr": 2, "cv": 1, "tt": 3}, 2, 16000)
    _mix_tree(tree, "wham_mix/wav8k/max", {"tt": 1}, 2, 8000)
    (tree.root / "wham_mix/wav16k/min/tt/noise/021a010b_0.97482_20ga010p_-0.97482.wav").unlink()
    out = tmp_path / "out"
    run("wham", tree, out)
    test = sets(out, "wham_tt", tree.root)
    assert len(test) == 2 and all(c == ["speech", "speech", "sfxbg"] for _, _, c, _ in test)
    name, refs, _, mixture = test[0]
    assert mixture == f"wham_mix/wav16k/min/tt/mix_both/{name}.wav"
    assert refs == [f"wham_mix/wav16k/min/tt/{f}/{name}.wav" for f in ("s1", "s2", "noise")]
    assert len(sets(out, "wham_cv", tree.root)) == 1
    assert [c for _, c, _ in pools(out, "train", tree.root)] == ["speech"] * 4 + ["sfxbg"] * 2
    assert "021a010b" in next(iter(skipped(out, tree.root)))
    run("wham", tree, tmp_path / "8k", rate="8k", mode="max", mix="clean")
    clean = read_jsonl(tmp_path / "8k" / "wham_tt.jsonl")
    assert [r["classes"] for r in clean] == [["speech", "speech"]]
    assert "/wav8k/max/tt/mix_clean/" in clean[0]["mixture"]


def test_wham_noise_sfxbg_pools(tree: Tree, tmp_path: Path) -> None:
    for split, n in (("tr", 3), ("cv", 1), ("tt", 2)):
        for i in range(n):
            tree.wav(
                f"wham_noise/{split}/40na010x_1.9857_01xo031a_-1.9857_{i}.wav", 16000, channels=2
            )
        tree.text(f"wham_noise/metadata/noise_meta_{split}.csv", "utterance_id,noise_band_widths\n")
    out = tmp_path / "out"
    run("wham-noise", tree, out)
    assert [len(read_csv(out / f"pools_{s}.csv")) for s in ("train", "valid", "test")] == [3, 1, 2]
    assert {r["class"] for r in read_csv(out / "pools_train.csv")} == {"sfxbg"}


def test_librimix_sets_with_three_speakers(tree: Tree, tmp_path: Path) -> None:
    _mix_tree(tree, "Libri3Mix/wav8k/min", {"test": 2, "dev": 1, "train-100": 1}, 3, 8000)
    tree.text("Libri3Mix/wav8k/min/metadata/mixture_test_mix_both.csv", "mixture_ID,mixture_path\n")
    out = tmp_path / "out"
    run("librimix", tree, out, rate="8k")
    test = sets(out, "librimix_test", tree.root)
    assert len(test) == 2 and test[0][2] == ["speech", "speech", "speech", "sfxbg"]
    assert len(sets(out, "librimix_dev", tree.root)) == 1
    assert not (out / "pools_train.csv").exists()  # speech pools come from LibriSpeech


# ---------------------------------------------------------------------------------------------
# Music and cinema


def test_musdb18hq_sets_and_pools(tree: Tree, tmp_path: Path) -> None:
    stems = ("mixture", "vocals", "bass", "drums", "other")
    tracks = {
        "train": ["A Classic Education - NightOwl", "Actions - One Minute Smile"],
        "test": [
            "Al James - Schoolboy Facination",
            "AM Contra - Heart Peripheral",
            "Bobby Nobody - Stitch Up",
        ],
    }
    for split, names in tracks.items():
        for name in names:
            for stem in stems:
                tree.wav(f"musdb18hq/{split}/{name}/{stem}.wav", 44100, channels=2)
    (tree.root / "musdb18hq/test/Bobby Nobody - Stitch Up/bass.wav").unlink()
    out = tmp_path / "out"
    run("musdb", tree, out)
    test = sets(out, "musdb18hq_test", tree.root)
    assert [n for n, *_ in test] == sorted(tracks["test"][:2])
    assert test[0][2] == ["vocals", "bass", "drums", "other"]
    assert test[0][3] == "musdb18hq/test/AM Contra - Heart Peripheral/mixture.wav"
    assert [n for n, *_ in sets(out, "musdb18hq_valid", tree.root)] == [
        "Actions - One Minute Smile"
    ]
    assert [c for _, c, _ in pools(out, "train", tree.root)] == [
        "vocals",
        "bass",
        "drums",
        "other",
        "musicbg",
    ]
    assert "bass.wav" in next(iter(skipped(out, tree.root)))
    item = EvalSetDataset(out / "musdb18hq_test.jsonl", 8000)[1]  # 44.1 kHz stereo → 8 kHz mono
    assert item["references"].shape == (4, 400)


def test_moisesdb_tracks_by_stem_class(tree: Tree, tmp_path: Path) -> None:
    song = "0a8a5c38-5a2f-4a2e-9b4c-0d1a2b3c4d5e"
    stems = {
        "vocals": [("lead_female_singer", "v1")],
        "drums": [("kick_drum", "d1"), ("snare_drum", "d2")],
        "percussion": [("a-tonal_percussion_(claps,_shakers,_congas,_cowbell_etc)", "p1")],
        "guitar": [("clean_electric_guitar", "g1")],
        "bass": [("bass_guitar", "b1")],
    }
    meta = {
        "song": "Song",
        "artist": "Artist",
        "genre": "pop",
        "stems": [
            {
                "stemName": s,
                "id": f"{s}-id",
                "tracks": [
                    {"trackType": t, "id": i, "extension": "wav", "hasBleed": False}
                    for t, i in tracks
                ],
            }
            for s, tracks in stems.items()
        ],
    }
    tree.text(f"moisesdb_v0.1/{song}/data.json", json.dumps(meta))
    for s, tracks in stems.items():
        for _, i in tracks:
            if i != "b1":  # listed in data.json but not on disk
                tree.wav(f"moisesdb_v0.1/{song}/{s}/{i}.wav", 44100, channels=2)
    other = "1b2c3d4e-0000-4000-8000-000000000000"  # a song whose data.json is broken
    tree.text(f"moisesdb_v0.1/{other}/data.json", "{not json")
    tree.wav(f"moisesdb_v0.1/{other}/vocals/x1.wav", 44100, channels=2)
    out = tmp_path / "out"
    run("moisesdb", tree, out)
    got = {(Path(p).name, c, label) for p, c, label in pools(out, "train", tree.root)}
    assert got == {
        ("v1.wav", "vocals", "vocals"),
        ("d1.wav", "drums", "drums"),
        ("d2.wav", "drums", "drums"),
        ("p1.wav", "drums", "percussion"),
        ("g1.wav", "other", "guitar"),
        ("x1.wav", "vocals", "vocals"),
    }
    reasons = skipped(out, tree.root)
    assert reasons[f"moisesdb_v0.1/{song}/bass/b1.wav"].startswith("missing")
    assert "unreadable data.json" in reasons[f"moisesdb_v0.1/{other}/data.json"]


def test_dnr_cinematic_sets_and_pools(tree: Tree, tmp_path: Path) -> None:
    for split, ids in (("tr", [1, 2]), ("cv", [300]), ("tt", [1000, 1001])):
        for i in ids:
            for stem in ("mix", "speech", "music", "sfx"):
                tree.wav(f"dnr_v2/{split}/{i}/{stem}.wav", 44100)
            tree.text(f"dnr_v2/{split}/{i}/annots.csv", "file,class,start,end\n")
    tree.corrupt("dnr_v2/tt/1001/music.wav")
    out = tmp_path / "out"
    run("dnr", tree, out)
    test = sets(out, "dnr_tt", tree.root)
    assert test == [
        (
            "1000",
            [f"dnr_v2/tt/1000/{s}.wav" for s in ("speech", "sfx", "music")],
            ["speech", "sfxbg", "musicbg"],
            "dnr_v2/tt/1000/mix.wav",
        )
    ]
    assert len(sets(out, "dnr_cv", tree.root)) == 1
    assert [c for _, c, _ in pools(out, "train", tree.root)] == ["speech", "sfxbg", "musicbg"] * 2


def test_fma_musicbg_pools_split_by_metadata(tree: Tree, tmp_path: Path) -> None:
    header = (
        ",album,album,set,set,track,track\n,id,title,split,subset,genre_top,title\ntrack_id,,,,,,\n"
    )
    rows = [
        (2, "training", "small", "Hip-Hop"),
        (5, "validation", "small", "Hip-Hop"),
        (140, "test", "medium", "Folk"),
        (141, "training", "small", "Folk"),
        (999, "training", "large", "Rock"),  # not in fma_medium: not expected
    ]
    body = "".join(f'{t},1,"An, album",{s},{sub},{g},Title\n' for t, s, sub, g in rows)
    tree.text("fma_metadata/tracks.csv", header + body)
    tree.text("fma_metadata/genres.csv", "genre_id,#tracks,parent,title,top_level\n")
    for t in (2, 5, 140):
        tid = f"{t:06d}"
        tree.wav(f"fma_medium/{tid[:3]}/{tid}.mp3", 44100, channels=2, seconds=0.3)
    tree.corrupt("fma_medium/000/000003.mp3")  # a known-broken FMA file
    out = tmp_path / "out"
    run("fma", tree, out)
    assert pools(out, "train", tree.root) == [("fma_medium/000/000002.mp3", "musicbg", "Hip-Hop")]
    assert [p for p, _, _ in pools(out, "valid", tree.root)] == ["fma_medium/000/000005.mp3"]
    assert [g for _, _, g in pools(out, "test", tree.root)] == ["Folk"]
    reasons = skipped(out, tree.root)
    assert reasons["fma_medium/000/000141.mp3"] == "missing: in tracks.csv"
    assert "fma_medium/000/000999.mp3" not in reasons and "fma_medium/000/000003.mp3" in reasons


# ---------------------------------------------------------------------------------------------
# Safety


@pytest.mark.parametrize(
    ("make_out", "message"),
    [
        (lambda tree, tmp: tree.root / "prepared", "is inside the corpus folder"),
        (lambda tree, tmp: tmp / "mine", "holds files that `wildsep prepare` did not write"),
    ],
)
def test_outputs_never_go_into_the_corpus_or_over_other_files(tree, tmp_path, make_out, message):
    tree.wav("DKITCHEN/ch01.wav", 16000)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    before = tree.fingerprint()
    with pytest.raises(PrepareError, match=message):
        prepare("demand", tree.root, make_out(tree, tmp_path))
    assert (
        tree.fingerprint() == before and (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    )


def test_cli_reports_counts_and_one_line_errors(tree: Tree, tmp_path: Path, capsys) -> None:
    for env in ("DLIVING", "OOFFICE"):
        tree.wav(f"{env}/ch01.wav", 48000)
    out = tmp_path / "out"
    assert cli.main(["prepare", "demand", str(tree.root), "--out", str(out)]) == 0
    assert f"{out / 'pools_train.csv'}: 2" in capsys.readouterr().out
    index = build_corpus_index(
        out / "pools_train.csv", cache_dir=tmp_path / "cache", num_proc=1, progress=False
    )
    assert len(index) == 2 and set(index.dataset["class"]) == {"sfxbg"}  # the project's input
    capsys.readouterr()

    for args, message in [
        (["musdb18hq", str(tree.root)], "does not look like MUSDB18-HQ: expected {train,test}/"),
        (["nope", str(tree.root)], "unknown corpus 'nope'; known: fuss, fsd50k"),
        (["demand", str(tree.root), "-o", "channels=some"], "choose from ['first', 'all']"),
        (["demand", str(tree.root), "-o", "mic=mic1"], "demand has no option 'mic'"),
        (["demand", str(tmp_path / "absent")], "does not exist or is not a folder"),
    ]:
        assert cli.main(["prepare", *args, "--out", str(tmp_path / "o2")]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
