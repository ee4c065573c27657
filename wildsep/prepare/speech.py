"""Speech corpora: VCTK, VoiceBank-DEMAND, LibriSpeech, LibriMix, WHAM! and its noise.

Speech files become `speech` pools; recorded noise becomes `sfxbg` (the TUSS "SFX-mix"
class); the noisy test sets become evaluation sets (speech enhancement: speech + sfxbg;
separation: speech × n [+ sfxbg]).
"""

from __future__ import annotations

import re
from pathlib import Path

import soundfile as sf

from wildsep.prepare.output import Prepared
from wildsep.prepare.recipe import Option, Recipe, audio_in, locate

# The two VCTK speakers of the VoiceBank-DEMAND test set: left out of VCTK pools by default so
# that a model trained on them is not tested on its training speakers.
VOICEBANK_TEST_SPEAKERS = frozenset({"p232", "p257"})
_SPEAKER = re.compile(r"^[ps]\d+$")


# ---------------------------------------------------------------------------------------------
# VCTK

_VCTK_LAYOUT = (
    "VCTK-Corpus-0.92 (wav48_silence_trimmed/<speaker>/<speaker>_<n>_mic1.flac) or the older "
    "VCTK-Corpus (wav48/<speaker>/<speaker>_<n>.wav)"
)


def _vctk_audio_dir(folder: Path) -> Path | None:
    for name in ("wav48_silence_trimmed", "wav48"):
        if (folder / name).is_dir():
            return folder / name
    return None


def prepare_vctk(out: Prepared, options: dict[str, str]) -> None:
    base = locate(out.root, "VCTK", _VCTK_LAYOUT, lambda p: _vctk_audio_dir(p) is not None)
    audio = _vctk_audio_dir(base)
    assert audio is not None
    keep_test = options["test-speakers"] == "keep"
    for speaker in sorted(p for p in audio.iterdir() if p.is_dir()):
        if not _SPEAKER.match(speaker.name):
            continue
        if speaker.name in VOICEBANK_TEST_SPEAKERS and not keep_test:
            out.exclude(f"VoiceBank-DEMAND test speaker {speaker.name}")
            continue
        for path in audio_in(speaker):
            # 0.92 has two microphones per utterance (…_mic1.flac, …_mic2.flac): keep one.
            mic = re.search(r"_(mic\d)$", path.stem)
            if mic and mic.group(1) != options["mic"]:
                continue
            out.pool("train", path, "speech", label=speaker.name)


VCTK = Recipe(
    "vctk",
    "VCTK",
    _VCTK_LAYOUT,
    prepare_vctk,
    {
        "mic": Option(("mic1", "mic2"), "which microphone of VCTK 0.92 (older releases: one)"),
        "test-speakers": Option(
            ("exclude", "keep"), "p232 and p257 are the VoiceBank-DEMAND test speakers"
        ),
    },
)


# ---------------------------------------------------------------------------------------------
# VoiceBank-DEMAND (Valentini et al.)

_VBD_LAYOUT = (
    "clean_testset_wav/ and noisy_testset_wav/ (p232_001.wav, …), optionally "
    "clean_trainset_28spk_wav/ (or _56spk_)"
)


def prepare_voicebank_demand(out: Prepared, options: dict[str, str]) -> None:
    """Test set: mixture = noisy file, references = clean file and noise = noisy − clean
    (written under OUT/derived/; the corpus ships no noise files). Clean training speech
    becomes the `speech` pool."""
    base = locate(
        out.root,
        "VoiceBank-DEMAND",
        _VBD_LAYOUT,
        lambda p: (p / "clean_testset_wav").is_dir() and (p / "noisy_testset_wav").is_dir(),
    )
    clean_dir, noisy_dir = base / "clean_testset_wav", base / "noisy_testset_wav"
    for clean in audio_in(clean_dir):
        noisy = noisy_dir / clean.name
        if not noisy.is_file():
            out.skip(noisy, "missing: no noisy file for this clean utterance")
            continue
        try:
            s, rate = sf.read(str(clean), dtype="float32", always_2d=True)
            x, noisy_rate = sf.read(str(noisy), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            out.skip(clean.stem, f"evaluation mixture dropped: unreadable: {err}")
            continue
        if rate != noisy_rate or s.shape != x.shape:
            out.skip(
                clean.stem,
                "evaluation mixture dropped: clean and noisy files differ in "
                f"rate or length ({rate} Hz {s.shape} vs {noisy_rate} Hz {x.shape})",
            )
            continue
        noise = out.derive(f"voicebank-demand/test/{clean.stem}_noise.wav", x - s, rate)
        out.example("voicebank-demand_test", clean.stem, [clean, noise], ["speech", "sfxbg"], noisy)
    for train in sorted(base.glob("clean_trainset_*_wav")):
        for path in audio_in(train):
            out.pool("train", path, "speech", label=path.stem.split("_")[0])


VOICEBANK_DEMAND = Recipe(
    "voicebank-demand", "VoiceBank-DEMAND", _VBD_LAYOUT, prepare_voicebank_demand
)


# ---------------------------------------------------------------------------------------------
# LibriSpeech and LibriMix

_LIBRISPEECH_LAYOUT = (
    "LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac with subsets "
    "train-clean-100, dev-clean, test-clean, …"
)
_LIBRI_SPLIT = {"train": "train", "dev": "valid", "test": "test"}


def _libri_subsets(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_dir() and p.name.split("-")[0] in _LIBRI_SPLIT
    )


def prepare_librispeech(out: Prepared, options: dict[str, str]) -> None:
    base = locate(
        out.root,
        "LibriSpeech",
        _LIBRISPEECH_LAYOUT,
        lambda p: any(any(s.glob("*/*/*.flac")) for s in _libri_subsets(p)),
        "LibriSpeech",
    )
    for subset in _libri_subsets(base):
        split = _LIBRI_SPLIT[subset.name.split("-")[0]]
        for path in sorted(subset.glob("*/*/*.flac")):
            out.pool(split, path, "speech", label=path.parent.parent.name, subset=subset.name)


LIBRISPEECH = Recipe("librispeech", "LibriSpeech", _LIBRISPEECH_LAYOUT, prepare_librispeech)

_LIBRIMIX_LAYOUT = (
    "Libri2Mix/ or Libri3Mix/ with wav16k|wav8k/min|max/<split>/{mix_both,mix_clean,s1,s2,"
    "noise}/<id>.wav (splits train-100, train-360, dev, test)"
)


def _mixture_sets(
    out: Prepared,
    base: Path,
    set_prefix: str,
    splits: dict[str, str],
    mix: str,
    with_pools: bool,
) -> None:
    """WHAM!/LibriMix style: `<split>/<mix folder>/<id>.wav` with sources `s1/`, `s2/`, [`s3/`]
    and `noise/` under the same name. Test and validation splits become evaluation sets;
    training splits (with `with_pools`) give speech and noise pools."""
    noisy = mix == "both"
    for folder_name, split in splits.items():
        folder = base / folder_name
        if not folder.is_dir():
            continue
        speakers = sorted(p.name for p in folder.iterdir() if re.fullmatch(r"s\d", p.name))
        if split == "train":
            if with_pools:
                for s in speakers:
                    for path in audio_in(folder / s):
                        out.pool("train", path, "speech", label=s)
                for path in audio_in(folder / "noise"):
                    out.pool("train", path, "sfxbg", label="noise")
            continue
        sources = speakers + (["noise"] if noisy else [])
        classes = ["speech"] * len(speakers) + (["sfxbg"] if noisy else [])
        for mixture in audio_in(folder / f"mix_{mix}"):
            refs = [folder / s / mixture.name for s in sources]
            if not out.all_present(refs, f"a source of {mixture}"):
                continue
            out.example(f"{set_prefix}_{folder_name}", mixture.stem, refs, classes, mixture)


def _has_version(p: Path, options: dict[str, str]) -> bool:
    return (p / f"wav{options['rate']}" / options["mode"]).is_dir()


def prepare_librimix(out: Prepared, options: dict[str, str]) -> None:
    base = locate(
        out.root,
        "LibriMix",
        _LIBRIMIX_LAYOUT,
        lambda p: _has_version(p, options),
        "Libri2Mix",
        "Libri3Mix",
    )
    version = base / f"wav{options['rate']}" / options["mode"]
    splits = {"train-100": "train", "train-360": "train", "dev": "valid", "test": "test"}
    # LibriSpeech (its recipe) is the speech pool; LibriMix gives only evaluation sets.
    _mixture_sets(out, version, "librimix", splits, options["mix"], with_pools=False)


_MIX_OPTIONS = {
    "rate": Option(("16k", "8k"), "the wav16k or wav8k version"),
    "mode": Option(("min", "max"), "min (cut to the shorter utterance) or max"),
    "mix": Option(("both", "clean"), "mix_both (with noise) or mix_clean"),
}
LIBRIMIX = Recipe("librimix", "LibriMix", _LIBRIMIX_LAYOUT, prepare_librimix, _MIX_OPTIONS)


# ---------------------------------------------------------------------------------------------
# WHAM!

_WHAM_LAYOUT = (
    "the output folder of WHAM!'s mixing scripts: wav16k|wav8k/min|max/{tr,cv,tt}/{mix_both,"
    "mix_clean,s1,s2,noise}/<id>.wav"
)


def prepare_wham(out: Prepared, options: dict[str, str]) -> None:
    """Evaluation sets `wham_tt`, `wham_cv` (speech, speech, sfxbg with mix_both) and, from
    `tr`, speech and noise pools."""
    base = locate(out.root, "WHAM!", _WHAM_LAYOUT, lambda p: _has_version(p, options))
    version = base / f"wav{options['rate']}" / options["mode"]
    splits = {"tr": "train", "cv": "valid", "tt": "test"}
    _mixture_sets(out, version, "wham", splits, options["mix"], with_pools=True)


WHAM = Recipe("wham", "WHAM!", _WHAM_LAYOUT, prepare_wham, _MIX_OPTIONS)

_WHAM_NOISE_LAYOUT = "wham_noise/{tr,cv,tt}/<id>.wav (with metadata/noise_meta_<split>.csv)"


def prepare_wham_noise(out: Prepared, options: dict[str, str]) -> None:
    """The WHAM! noise recordings (cafés, restaurants, bars; 16 kHz, two channels) as `sfxbg`
    pools, split as distributed."""
    base = locate(
        out.root,
        "WHAM! noise",
        _WHAM_NOISE_LAYOUT,
        lambda p: any((p / s).is_dir() for s in ("tr", "cv", "tt")),
        "wham_noise",
    )
    for folder, split in (("tr", "train"), ("cv", "valid"), ("tt", "test")):
        for path in audio_in(base / folder):
            out.pool(split, path, "sfxbg", label="wham_noise")


WHAM_NOISE = Recipe("wham-noise", "WHAM! noise", _WHAM_NOISE_LAYOUT, prepare_wham_noise)
