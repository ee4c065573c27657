"""Benchmark protocols: the test set, prompts, metric and conventions of each task of the TUSS
paper (seed 001), so that `wildsep evaluate MODEL --benchmark NAME` gives numbers comparable
line by line with the paper's.

| benchmark | task | set (`wildsep prepare`) | classes of every mixture | metric |
|---|---|---|---|---|
| vctk-demand | SE | VoiceBank-DEMAND test | speech, sfxbg | SI-SDR |
| wham | SS | WHAM! tt (mix_both) | speech, speech, sfxbg | SI-SDR |
| fuss | USS | FUSS eval | 1–4 × sfx | SI-SDR, FUSS MSi/SS/separation |
| musdb | MSS | MUSDB18-HQ test | vocals, bass, drums, other | SNR, BSS-eval SDR |
| dnr | CASS | DnR tt | speech, sfxbg, musicbg | SI-SDR |

A prompted model is prompted with the mixture's classes, in the manifest's order (for WHAM!:
`speech speech sfxbg`, for FUSS one `sfx` per source). SI-SDR here is the scale-invariant SNR
of `losses.si_snr` (the same quantity). The task score is the mean over every scored source of
the set, as in `score.summarise`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Seed 001 (TUSS thesis slides): per task, dB. Unconditional = the same stack without prompts.
PAPER_COLUMNS = (
    "unconditional (M)",
    "TUSS (M)",
    "specialist (M)",
    "TUSS (L)",
    "specialist (L)",
)
_PAPER = {
    "SE": (14.0, 14.8, 15.9, 15.1, 16.0),
    "SS": (6.8, 9.1, 10.3, 10.3, 11.4),
    "USS": (8.1, 9.6, 10.2, 12.2, 10.0),
    "MSS": (4.9, 6.8, 8.3, 7.4, 9.1),
    "CASS": (6.0, 9.1, 9.7, 10.1, 10.0),
}


@dataclass(frozen=True)
class Benchmark:
    """One task's evaluation protocol.

    Attributes:
        name: the `--benchmark` value.
        task: the TUSS task (SE, SS, USS, MSS, CASS).
        corpus: the public test set.
        recipe, set_file: the `wildsep prepare` recipe and the manifest it writes.
        classes: the class multiset every mixture must have; None with `sources` for sets of
            a variable number of one class (FUSS).
        sources: (class, fewest, most) for variable sets.
        metric: the task's score: "si_snr" (SI-SDR) or "snr".
        sdr_window: seconds per BSS-eval SDR window (median over windows, then over
            mixtures, as SiSEC reports MUSDB); None: no BSS-eval SDR.
        fuss: also report FUSS MSi, SS and under/equal/over-separation.
        notes: the segment conventions, printed under the table.
    """

    name: str
    task: str
    corpus: str
    recipe: str
    set_file: str
    metric: str
    classes: tuple[str, ...] | None = None
    sources: tuple[str, int, int] | None = None
    sdr_window: float | None = None
    fuss: bool = False
    notes: str = ""
    paper: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paper", dict(zip(PAPER_COLUMNS, _PAPER[self.task], strict=True)))

    def expected(self) -> str:
        if self.classes is not None:
            return "[" + ", ".join(self.classes) + "]"
        assert self.sources is not None
        cls, low, high = self.sources
        return f"{low} to {high} × {cls}"

    def check_classes(self, classes: Sequence[str]) -> bool:
        """Whether a mixture with these classes belongs to this benchmark."""
        if self.classes is not None:
            return Counter(classes) == Counter(self.classes)
        assert self.sources is not None
        cls, low, high = self.sources
        return set(classes) == {cls} and low <= len(classes) <= high

    def describe(self) -> dict[str, Any]:
        """What metrics.json records about the protocol."""
        return {
            "name": self.name,
            "task": self.task,
            "corpus": self.corpus,
            "metric": self.metric,
            "sdr_window": self.sdr_window,
            "notes": self.notes,
            "paper": self.paper,
        }


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            name="vctk-demand",
            task="SE",
            corpus="VoiceBank-DEMAND (Valentini) test, 824 utterances",
            recipe="voicebank-demand",
            set_file="voicebank-demand_test.jsonl",
            classes=("speech", "sfxbg"),
            metric="si_snr",
            notes="whole utterances; the noise reference is noisy − clean",
        ),
        Benchmark(
            name="wham",
            task="SS",
            corpus="WHAM! tt (3000 mixtures, mix_both)",
            recipe="wham",
            set_file="wham_tt.jsonl",
            classes=("speech", "speech", "sfxbg"),
            metric="si_snr",
            notes="whole mixtures of the prepared version (default wav16k/min); the two "
            "speakers are matched by PIT",
        ),
        Benchmark(
            name="fuss",
            task="USS",
            corpus="FUSS eval (1000 mixtures of 10 s, reverberant)",
            recipe="fuss",
            set_file="fuss_eval.jsonl",
            sources=("sfx", 1, 4),
            metric="si_snr",
            fuss=True,
            notes="10 s clips; MSi over 2–4-source mixtures, SS over 1-source mixtures",
        ),
        Benchmark(
            name="musdb",
            task="MSS",
            corpus="MUSDB18-HQ test (50 tracks)",
            recipe="musdb18hq",
            set_file="musdb18hq_test.jsonl",
            classes=("vocals", "bass", "drums", "other"),
            metric="snr",
            sdr_window=1.0,
            notes="full tracks, down-mixed to mono, chunked inference; SNR over the whole "
            "track (the paper's MSS metric, MDX 'utterance SDR'); SDR = BSS-eval SDR "
            "(bss_eval_sources, 512-tap filter, fast_bss_eval) per 1 s window, median per "
            "track, median over tracks: the SiSEC 2018 aggregation, though museval fits its "
            "filter on the whole stereo track, so its values can differ slightly",
        ),
        Benchmark(
            name="dnr",
            task="CASS",
            corpus="Divide and Remaster (DnR v2) tt",
            recipe="dnr",
            set_file="dnr_tt.jsonl",
            classes=("speech", "sfxbg", "musicbg"),
            metric="si_snr",
            notes="whole 60 s mixtures, chunked inference",
        ),
    )
}


def get_benchmark(name: str) -> Benchmark:
    """The protocol called `name`; ValueError listing the known ones."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]
