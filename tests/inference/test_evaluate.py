"""Evaluation: metrics against values computed by hand, PIT only inside class groups, FUSS
summaries, task classification, reports, and clear errors for sets a model cannot take."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wildsep import cli
from wildsep import evaluate as ev
from wildsep.models import load_pretrained

from .fakes import RATE, Lookup

T = 4000  # 0.5 s: shorter than a segment, so each mixture is one direct model call


def si_snr(est: np.ndarray, ref: np.ndarray) -> float:
    """By hand, in float64: zero-mean, α = ⟨ŝ,s⟩/‖s‖², 10·log10(‖αs‖² / ‖ŝ − αs‖²)."""
    est, ref = est - est.mean(), ref - ref.mean()
    target = (est @ ref) / (ref @ ref) * ref
    return 10 * np.log10((target @ target) / ((est - target) @ (est - target)))


def snr(est: np.ndarray, ref: np.ndarray) -> float:
    return 10 * np.log10((ref @ ref) / ((ref - est) @ (ref - est)))


class SetBuilder:
    """Writes an evaluation manifest of float WAVs and the fake model's output table."""

    def __init__(self, root: Path) -> None:
        self.root, self.rows, self.table = root, [], []
        self.rng = np.random.default_rng(0)

    def noise(self, scale: float = 1.0) -> np.ndarray:
        return (scale * self.rng.standard_normal(T)).astype(np.float32)

    def add(self, classes: list[str], refs: list[np.ndarray], outputs: list[np.ndarray]) -> None:
        folder = self.root / f"mix_{len(self.rows)}"
        folder.mkdir(parents=True)
        paths = []
        for k, ref in enumerate(refs):
            sf.write(str(folder / f"s{k}.wav"), ref, RATE, subtype="FLOAT")
            paths.append(f"{folder.name}/s{k}.wav")
        mixture = np.sum(refs, axis=0, dtype=np.float32)
        sf.write(str(folder / "mixture.wav"), mixture, RATE, subtype="FLOAT")
        self.rows.append({"mixture": f"{folder.name}/mixture.wav", "references": paths})
        self.rows[-1]["classes"] = classes
        self.table.append((torch.from_numpy(mixture), torch.from_numpy(np.stack(outputs))))

    def manifest(self) -> Path:
        path = self.root / "manifest.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in self.rows))
        return path


def expected(est: np.ndarray, ref: np.ndarray, mixture: np.ndarray) -> dict[str, float]:
    return {
        "si_snr": si_snr(est, ref),
        "si_snri": si_snr(est, ref) - si_snr(mixture, ref),
        "snr": snr(est, ref),
        "snri": snr(est, ref) - snr(mixture, ref),
    }


def check(row: dict, want: dict[str, float | None]) -> None:
    for key, value in want.items():
        assert row[key] == pytest.approx(value, abs=2e-3), (key, row[key], value)


def test_prompted_metrics_by_hand_and_pit_within_classes(tmp_path: Path) -> None:
    b = SetBuilder(tmp_path)
    # SS: the two speech outputs come swapped; PIT must swap them back.
    r = [b.noise(), b.noise(0.5), b.noise(0.3)]
    out0 = [r[1] + b.noise(0.1), r[0] + b.noise(0.2), r[2] + b.noise(0.3)]
    b.add(["speech", "speech", "sfxbg"], r, out0)
    # SE: speech and sfxbg outputs swapped; different classes must never be swapped back.
    s = [b.noise(), b.noise(0.7)]
    out1 = [s[1] + b.noise(0.1), s[0] + b.noise(0.1)]
    b.add(["speech", "sfxbg"], s, out1)
    # USS with a silent reference: not scored, and it must not pull the quiet but good
    # estimate of u0 (output 0) away from u0 (a −SI-SNR against silence prefers quiet outputs).
    u = [b.noise(), np.zeros(T, np.float32), b.noise(0.8)]
    out2 = [0.001 * (u[0] + b.noise(0.5)), u[2] + b.noise(0.1), b.noise()]
    b.add(["sfx", "sfx", "sfx"], u, out2)
    model = Lookup(b.table, prompts=("speech", "sfx", "sfxbg")).train()

    result = ev.evaluate(model, b.manifest(), out=tmp_path / "report", device="cpu")
    assert model.training  # a training loop gets its model back in train mode
    rows = result["examples"]
    assert model.calls == [["speech", "speech", "sfxbg"], ["speech", "sfxbg"], ["sfx"] * 3]

    mix0 = np.sum(r, 0, dtype=np.float32)
    assert [(x["reference"], x["output"]) for x in rows[0]["sources"]] == [(0, 1), (1, 0), (2, 2)]
    for x, (o, n) in zip(rows[0]["sources"], [(1, 0), (0, 1), (2, 2)], strict=True):
        check(x, expected(out0[o], r[n], mix0))
    mix1 = np.sum(s, 0, dtype=np.float32)
    assert [x["output"] for x in rows[1]["sources"]] == [0, 1]
    for x, n in zip(rows[1]["sources"], [0, 1], strict=True):
        check(x, expected(out1[n], s[n], mix1))
        assert x["si_snr"] < 0  # scored against the wrong class's estimate, as it must be
    mix2 = np.sum(u, 0, dtype=np.float32)
    assert [(x["reference"], x["output"]) for x in rows[2]["sources"]] == [(0, 0), (2, 1)]
    check(rows[2]["sources"][0], expected(out2[0], u[0], mix2))
    assert [e["n_sources"] for e in rows] == [3, 2, 2]

    tasks = result["summary"]["tasks"]
    assert list(tasks) == ["SE", "SS", "USS"]
    ss = [expected(out0[o], r[n], mix0) for o, n in [(1, 0), (0, 1), (2, 2)]]
    assert tasks["SS"]["metric"] == "si_snr" and tasks["SS"]["sources"] == 3
    assert tasks["SS"]["score"] == pytest.approx(np.mean([m["si_snr"] for m in ss]), abs=2e-3)
    assert tasks["SS"]["improvement"] == pytest.approx(np.mean([m["si_snri"] for m in ss]), 1e-3)
    speech = [ss[0], ss[1], expected(out1[0], s[0], mix1)]
    per_class = result["summary"]["per_class"]["speech"]
    assert per_class["sources"] == 3
    assert per_class["snr"] == pytest.approx(np.mean([m["snr"] for m in speech]), abs=2e-3)
    assert result["summary"]["per_num_sources"]["2"]["examples"] == 2

    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(result))
    report = (tmp_path / "report" / "metrics.md").read_text()
    assert "| SS | 1 | 3 | SI-SNR |" in report and "## Per class" in report


def test_unconditional_fuss_metrics_by_hand(tmp_path: Path) -> None:
    b = SetBuilder(tmp_path)
    quiet = lambda x: 0.001 * x  # noqa: E731  below 1% of the weakest reference's power
    r0 = b.noise()
    out0 = [r0 + b.noise(0.1), b.noise(0.5), quiet(b.noise())]  # 2 active outputs: over
    b.add(["speech"], [r0], out0)
    s = [b.noise(), b.noise(0.5)]
    out1 = [quiet(b.noise()), s[1] + b.noise(0.1), s[0] + b.noise(0.2)]  # equal
    b.add(["speech", "sfx"], s, out1)
    u = [b.noise(), np.zeros(T, np.float32), b.noise()]
    out2 = [u[0] + b.noise(0.1), quiet(b.noise()), quiet(u[2] + b.noise(0.5))]  # under
    b.add(["sfx", "sfx", "sfx"], u, out2)

    result = ev.evaluate(Lookup(b.table), b.manifest(), device="cpu")
    rows = result["examples"]
    assert [e["separation"] for e in rows] == ["over", "equal", "under"]
    assert [e["active_outputs"] for e in rows] == [2, 2, 1]
    single = rows[0]["sources"][0]
    assert single["si_snr"] == pytest.approx(si_snr(out0[0], r0), abs=2e-3)
    assert single["si_snri"] is None  # undefined: the mixture is the reference
    assert [x["output"] for x in rows[1]["sources"]] == [2, 1]
    assert [(x["reference"], x["output"]) for x in rows[2]["sources"]] == [(0, 0), (2, 2)]
    mix1, mix2 = np.sum(s, 0, dtype=np.float32), np.sum(u, 0, dtype=np.float32)
    improvements = [
        expected(out1[2], s[0], mix1)["si_snri"],
        expected(out1[1], s[1], mix1)["si_snri"],
        expected(out2[0], u[0], mix2)["si_snri"],
        expected(out2[2], u[2], mix2)["si_snri"],
    ]
    fuss = result["summary"]["fuss"]
    assert fuss["msi"] == pytest.approx(np.mean(improvements), abs=2e-3)
    assert fuss["msi_sources"] == 4 and fuss["ss_examples"] == 1
    assert fuss["ss"] == pytest.approx(si_snr(out0[0], r0), abs=2e-3)
    assert fuss["ss_per_class"] == {"speech": pytest.approx(fuss["ss"], abs=1e-9)}
    rates = [fuss[f"{k}_separation"] for k in ("under", "equal", "over")]
    assert rates == pytest.approx([1 / 3] * 3)
    assert "## FUSS" in ev.to_markdown(result) and "SS per class: speech" in ev.to_markdown(result)


@pytest.mark.parametrize(
    ("classes", "task"),
    [
        (["vocals", "bass", "drums", "other"], "MSS"),
        (["drums", "bass"], "MSS"),
        (["musicbg", "speech", "sfxbg"], "CASS"),
        (["sfxbg", "speech"], "SE"),
        (["speech", "speech"], "SS"),
        (["speech", "sfxbg", "speech", "speech"], "SS"),
        (["sfx", "sfx", "sfx"], "USS"),
        (["speech", "sfx"], "mixed"),
        (["speech", "sfxbg", "sfxbg"], "mixed"),
        (["speech", "sfxbg", "musicbg", "sfx"], "mixed"),
        (["vocals", "speech"], "mixed"),
    ],
)
def test_task_classification(classes: list[str], task: str) -> None:
    assert ev.classify_task(classes) == task


def test_sets_the_model_cannot_take_fail_before_separating(tmp_path: Path) -> None:
    b = SetBuilder(tmp_path)
    b.add(["speech", "piano"], [b.noise(), b.noise()], [b.noise(), b.noise()])
    prompted = Lookup(b.table, prompts=("speech", "sfx"))
    with pytest.raises(ev.EvaluationError, match=r"classes \['piano'\] that are not prompts") as e:
        ev.evaluate(prompted, b.manifest(), device="cpu")
    assert "the set's classes: ['piano', 'speech']" in str(e.value)
    assert "the model's prompts: ['speech', 'sfx']" in str(e.value)
    unconditional = Lookup([(m, o[:1]) for m, o in b.table])  # one output, two references
    with pytest.raises(ev.EvaluationError, match=r"up to 2 references.*only 1 outputs"):
        ev.evaluate(unconditional, b.manifest(), device="cpu")
    assert prompted.calls == [] and unconditional.calls == []
    with pytest.raises(ev.EvaluationError, match="does not exist"):
        ev.evaluate(prompted, tmp_path / "nope.jsonl", device="cpu")


def test_cli_on_the_demo_set(tmp_path, tuss_dir, backbone_dir, demo_corpus, capsys) -> None:
    """`python -m wildsep.evaluate RUN_DIR` writes RUN_DIR/eval_test/ by default; the
    `wildsep evaluate` subcommand is the same; incompatible or missing checkpoints fail."""
    run = tmp_path / "run"
    load_pretrained(tuss_dir).save_pretrained(run / "model")
    test_set = str(demo_corpus / "test" / "manifest.jsonl")
    assert ev.main([str(run), "--set", test_set, "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((run / "eval_test" / "metrics.json").read_text())
    assert len(saved["examples"]) == 3 and saved["kind"] == "prompted"
    assert printed.strip() == (run / "eval_test" / "metrics.md").read_text().strip()
    assert "## Tasks (TUSS paper)" in printed

    out = tmp_path / "bb"
    args = ["evaluate", str(backbone_dir), "--set", test_set, "--out", str(out)]
    assert cli.main([*args, "--max-examples", "2"]) == 0
    assert len(json.loads((out / "metrics.json").read_text())["examples"]) == 2
    assert "## FUSS" in capsys.readouterr().out

    valid_set = str(demo_corpus / "valid" / "manifest.jsonl")  # has a 4-source mixture
    for ckpt, message in [
        (backbone_dir, "up to 4 references but this unconditional model has only 3 outputs"),
        (tmp_path / "missing", "does not exist"),
        (tmp_path, "has no config.json"),
    ]:
        assert cli.main(["evaluate", str(ckpt), "--set", valid_set, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_named_outputs_are_scored_against_the_reference_of_their_class():
    from wildsep.evaluate.score import score_named

    refs = torch.randn(3, 800)
    refs[1] = 0.0  # a silent bass: not scored
    classes = ["vocals", "bass", "drums"]
    names = ["drums", "bass", "vocals", "other"]
    est = torch.zeros(4, 800)
    est[0], est[2] = refs[2] + 0.01 * torch.randn(800), refs[0] + 0.1 * torch.randn(800)
    rows = score_named(est, refs, refs.sum(0), classes, names)
    assert [(r["class"], r["reference"], r["output"]) for r in rows] == [
        ("vocals", 0, 2),
        ("drums", 2, 0),
    ]
    for row, (e, r) in zip(rows, ((est[2], refs[0]), (est[0], refs[2])), strict=True):
        expected = 10 * torch.log10(r.pow(2).sum() / (r - e).pow(2).sum())
        assert row["snr"] == pytest.approx(expected.item(), abs=1e-3)
