"""Benchmark presets (`--benchmark`): the metric definitions against values computed by hand —
BSS-eval SDR as a least-squares projection, FUSS MSi/SS/separation for a prompted model, the
MSS score in SNR — the seed-001 numbers, and sets of the wrong task refused up front."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch

from wildsep import cli
from wildsep import evaluate as ev
from wildsep.evaluate.protocols import BENCHMARKS
from wildsep.metrics import windowed_sdr
from wildsep.prepare import RECIPES

from .fakes import RATE, Lookup
from .test_evaluate import SetBuilder, T, expected, si_snr, snr


def sdr_by_projection(est: np.ndarray, ref: np.ndarray, taps: int) -> float:
    """BSS-eval SDR by hand: project the estimate (zero-padded by taps − 1) on the span of the
    reference delayed by 0 … taps − 1 samples; SDR = ‖projection‖² / ‖estimate − projection‖²."""
    length = len(ref)
    delayed = np.zeros((length + taps - 1, taps))
    for k in range(taps):
        delayed[k : k + length, k] = ref
    padded = np.concatenate([est, np.zeros(taps - 1)])
    coef, *_ = np.linalg.lstsq(delayed, padded, rcond=None)
    target = delayed @ coef
    return 10 * np.log10((target @ target) / ((padded - target) @ (padded - target)))


def test_windowed_sdr_is_the_median_of_projection_sdrs_over_non_silent_windows() -> None:
    rng = np.random.default_rng(0)
    window, taps, count = 400, 16, 5
    refs = rng.standard_normal((3, window * count)) * np.array([[1.0], [0.1], [3.0]])
    refs[1, window : 3 * window] = 0  # two silent windows: skipped
    refs[2] = 0  # silent throughout: no SDR
    est = np.stack([np.convolve(r, [0.9, 0.2, -0.1])[: r.size] for r in refs])
    est += rng.standard_normal(est.shape) * np.array([[0.1], [0.05], [0.2]])
    est = np.concatenate([est, rng.standard_normal((3, 150))], axis=1)  # a partial window
    refs = np.concatenate([refs, rng.standard_normal((3, 150))], axis=1)  # is dropped

    got = windowed_sdr(torch.from_numpy(est), torch.from_numpy(refs), window, taps)
    for n in range(2):
        per_window = [
            sdr_by_projection(est[n, w * window : (w + 1) * window], ref_w, taps)
            for w in range(count)
            if np.any(ref_w := refs[n, w * window : (w + 1) * window])
        ]
        assert len(per_window) == (count if n == 0 else count - 2)
        assert float(got[n]) == pytest.approx(np.median(per_window), abs=1e-4)
    assert np.isnan(float(got[2]))


def test_fuss_benchmark_scores_a_prompted_model_like_fuss(tmp_path: Path) -> None:
    """FUSS with a prompted model: one `sfx` prompt per source; MSi pools SI-SNRi over 2–4
    source mixtures, SS is the 1-source SI-SNR, separation counts use the prompted outputs."""
    b = SetBuilder(tmp_path)
    r0 = b.noise(0.5)
    out0 = r0 + b.noise(0.05)
    b.add(["sfx"], [r0], [out0])  # equal
    s = [b.noise(), b.noise(0.3)]
    out1 = [s[1] + b.noise(0.1), s[0] + b.noise(0.3)]  # swapped: PIT inside the sfx group
    b.add(["sfx", "sfx"], s, out1)
    u = [b.noise(), b.noise(2.0), b.noise(0.2)]
    # Output 2 is a faint copy of u[2] (about 0.5% of its power: inactive): under-separation.
    out2 = [u[0] + b.noise(0.2), u[1] + b.noise(0.4), 0.05 * u[2] + b.noise(0.01)]
    b.add(["sfx", "sfx", "sfx"], u, out2)
    model = Lookup(b.table, prompts=("speech", "sfx"))

    result = ev.evaluate(model, b.manifest(), benchmark="fuss", device="cpu")
    assert model.calls == [["sfx"], ["sfx", "sfx"], ["sfx"] * 3]
    assert [e["separation"] for e in result["examples"]] == ["equal", "equal", "under"]
    mix1, mix2 = np.sum(s, 0, dtype=np.float32), np.sum(u, 0, dtype=np.float32)
    multi = [expected(out1[1], s[0], mix1), expected(out1[0], s[1], mix1)]
    multi += [expected(out2[k], u[k], mix2) for k in range(3)]
    fuss = result["summary"]["fuss"]
    assert fuss["msi"] == pytest.approx(np.mean([m["si_snri"] for m in multi]), abs=2e-3)
    assert fuss["ss"] == pytest.approx(si_snr(out0, r0), abs=2e-3)
    assert [fuss[f"{k}_separation"] for k in ("under", "equal", "over")] == pytest.approx(
        [1 / 3, 2 / 3, 0]
    )
    bench = result["summary"]["benchmark"]
    every = [si_snr(out0, r0)] + [m["si_snr"] for m in multi]
    assert bench["task"] == "USS" and bench["metric"] == "si_snr"
    assert bench["score"] == pytest.approx(np.mean(every), abs=2e-3)
    assert bench["paper"]["TUSS (M)"] == 9.6
    report = ev.to_markdown(result)
    assert "| USS | 3 | 6 | SI-SDR |" in report and "## FUSS" in report


def test_musdb_benchmark_scores_snr_and_bss_eval_sdr(tmp_path: Path) -> None:
    b = SetBuilder(tmp_path)
    stems = ["vocals", "bass", "drums", "other"]
    tracks = []
    for level in (0.05, 0.2, 0.6):  # three tracks, each stem with its own error level
        refs = [b.noise(scale) for scale in (1.0, 0.5, 0.8, 0.3)]
        outs = [np.roll(r, 1) * 0.7 + b.noise(level) for r in refs]  # a delay: SNR < SDR
        b.add(stems, refs, outs)
        tracks.append((refs, outs))
    model = Lookup(b.table, prompts=tuple(stems))
    result = ev.evaluate(model, b.manifest(), benchmark="musdb", device="cpu")
    bench = result["summary"]["benchmark"]

    snrs = [snr(o, r) for refs, outs in tracks for o, r in zip(outs, refs, strict=True)]
    assert bench["metric"] == "snr" and bench["score"] == pytest.approx(np.mean(snrs), abs=2e-3)
    assert T < RATE  # shorter than one 1 s window: the whole track is one window, 512 taps
    for k, stem in enumerate(stems):
        by_hand = [sdr_by_projection(outs[k], refs[k], 512) for refs, outs in tracks]
        assert bench["sdr_per_class"][stem] == pytest.approx(statistics.median(by_hand), abs=1e-3)
        assert bench["sdr_per_class"][stem] > bench["per_class"][stem] + 3  # the filter helps
    assert bench["sdr"] == pytest.approx(np.mean(list(bench["sdr_per_class"].values())))
    assert "BSS-eval SDR" in ev.to_markdown(result) and "| MSS | 3 | 12 | SNR |" in ev.to_markdown(
        result
    )


def test_a_set_of_another_task_is_refused_before_separating(tmp_path: Path) -> None:
    b = SetBuilder(tmp_path)
    b.add(["speech", "speech", "sfxbg"], [b.noise()] * 3, [b.noise()] * 3)
    b.add(["speech", "sfx"], [b.noise()] * 2, [b.noise()] * 2)
    model = Lookup(b.table, prompts=("speech", "sfx", "sfxbg"))
    with pytest.raises(ev.EvaluationError) as error:
        ev.evaluate(model, b.manifest(), benchmark="wham", device="cpu")
    message = str(error.value)
    assert "mixture 2 has classes ['speech', 'sfx']" in message and "\n" not in message
    assert "expects [speech, speech, sfxbg]" in message and "wildsep prepare wham" in message
    assert model.calls == []
    with pytest.raises(ev.EvaluationError, match="unknown benchmark 'nope'"):
        ev.evaluate(model, b.manifest(), benchmark="nope", device="cpu")


def test_cli_benchmark_takes_the_prepared_folder(tmp_path: Path, tuss_dir: Path, capsys) -> None:
    """`--set` may be the folder `wildsep prepare` wrote: the preset names its set file."""
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    b = SetBuilder(prepared)
    for _ in range(3):
        refs = [b.noise(), b.noise(0.3), b.noise(0.5)]
        b.add(["speech", "sfxbg", "musicbg"], refs, refs)
    b.rows[:] = [{**row, "name": f"dnr_{i}"} for i, row in enumerate(b.rows)]
    b.manifest().rename(prepared / BENCHMARKS["dnr"].set_file)
    out = tmp_path / "out"
    args = ["evaluate", str(tuss_dir), "--benchmark", "dnr", "--set", str(prepared)]
    assert cli.main([*args, "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["benchmark"] == "dnr" and saved["set"] == "dnr_tt"
    assert "## Benchmark dnr: CASS" in printed
    assert "| CASS | 3 | 9 | SI-SDR |" in printed and "| 6.0 | 9.1 | 9.7 | 10.1 | 10.0 |" in printed


def test_presets_carry_the_seed_001_numbers_and_rates() -> None:
    paper = {b.task: list(b.paper.values()) for b in BENCHMARKS.values()}
    assert [paper[t][1] for t in ("SE", "SS", "USS", "MSS", "CASS")] == [14.8, 9.1, 9.6, 6.8, 9.1]
    assert [paper[t][0] for t in ("SE", "SS", "USS", "MSS", "CASS")] == [14.0, 6.8, 8.1, 4.9, 6.0]
    assert {b.name: b.metric for b in BENCHMARKS.values()}["musdb"] == "snr"
    for b in BENCHMARKS.values():  # each preset's set is one that its recipe writes
        assert b.recipe in RECIPES and b.set_file.startswith(b.recipe + "_")
