"""Presence targets from energy, and the presence classifier and its objective."""

import pytest
import torch

from wildsep.engine import keyed_generator
from wildsep.models import PresenceClassifier, PresenceConfig, load_pretrained
from wildsep.models.presence import (
    class_presence,
    mel_filterbank,
    num_windows,
    presence_targets,
    window_energy,
)
from wildsep.objectives import PresenceObjective, PresenceObjectiveConfig
from wildsep.objectives.semisup import activity_gates

TINY = dict(n_mels=16, channels=8, conv_blocks=2, dim=16, context_blocks=2)


def test_windows_cover_the_signal_on_a_fixed_grid():
    assert num_windows(10, 4, 2) == 4  # [0,4) [2,6) [4,8) [6,10)
    assert num_windows(3, 4, 2) == 0
    x = torch.arange(10.0)
    expected = torch.tensor([(x[s : s + 4] ** 2).mean() for s in (0, 2, 4, 6)])
    torch.testing.assert_close(window_energy(x, 4, 2), expected)


def test_presence_targets_threshold_the_energy_of_each_source():
    window, hop = 100, 50
    sources = torch.zeros(1, 3, 1000)
    sources[0, 0, 0:300] = 1.0  # loud burst: windows 0..4 touch it
    sources[0, 0, 600:700] = 0.1  # −20 dB below its peak: present at −30 dB, absent at −10
    sources[0, 1] = 1e-3 * torch.randn(1000).sign()  # quiet but steady: present everywhere
    # source 2 is silent: absent everywhere
    targets = presence_targets(sources, window, hop, threshold_db=-30.0, reference="peak")
    assert targets.shape == (1, 3, num_windows(1000, window, hop)) == (1, 3, 19)
    loud = [j for j in range(19) if j * hop < 300]
    quiet = [j for j in range(19) if j * hop < 700 and j * hop + window > 600]
    assert targets[0, 0].nonzero().flatten().tolist() == sorted(loud + quiet)
    assert targets[0, 1].all() and not targets[0, 2].any()
    strict = presence_targets(sources, window, hop, threshold_db=-10.0)
    assert strict[0, 0].nonzero().flatten().tolist() == loud
    # partial overlap counts by energy: window 5 = [250, 350) holds half the burst, −3 dB
    assert presence_targets(sources[:, :1], window, hop, threshold_db=-4.0)[0, 0, 5]
    assert not presence_targets(sources[:, :1], window, hop, threshold_db=-2.0)[0, 0, 5]


def test_presence_references_rms_and_absolute():
    x = torch.zeros(1, 1, 400)
    x[0, 0, :100] = 0.5  # window 0 at −6 dBFS; mean power over the clip −12 dB
    absolute = presence_targets(x, 100, 100, threshold_db=-7.0, reference="absolute")
    assert absolute[0, 0].tolist() == [True, False, False, False]
    assert not presence_targets(x, 100, 100, threshold_db=-5.0, reference="absolute").any()
    rms = presence_targets(x, 100, 100, threshold_db=5.0, reference="rms")  # 6 dB above mean
    assert rms[0, 0].tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="reference"):
        presence_targets(x, 100, 100, reference="median")


def test_class_presence_is_the_or_of_a_classes_sources():
    presence = torch.tensor(
        [[[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[0, 0, 0], [1, 1, 0], [0, 0, 0]]], dtype=torch.bool
    )
    labels = [["speech", "speech", "drums"], ["sfx", "speech", "sfx"]]
    out = class_presence(presence, labels, ["speech", "sfx"])  # drums is not a class: ignored
    assert out.shape == (2, 3, 2)
    assert out[0, :, 0].tolist() == [1, 1, 0] and out[0, :, 1].tolist() == [0, 0, 0]
    assert out[1, :, 0].tolist() == [1, 1, 0] and out[1, :, 1].tolist() == [0, 0, 0]


def test_mel_filterbank_is_triangular_and_covers_the_band():
    fb = mel_filterbank(8000, 256, 16)
    assert fb.shape == (16, 129) and (fb >= 0).all() and (fb <= 1).all()
    assert (fb.max(1).values > 0.5).all()  # every filter gets some bins
    assert (fb.sum(0)[2:-2] > 0).all()  # every bin but the very edges feeds a filter
    centres = fb.argmax(1)
    assert (centres[1:] >= centres[:-1]).all()


def test_classifier_outputs_one_logit_per_window_and_class_and_is_level_invariant(tmp_path):
    torch.manual_seed(0)
    model = PresenceClassifier(PresenceConfig(classes=["a", "b", "c"], **TINY)).eval()
    x = torch.randn(2, 8000 * 3 + 123)
    logits = model(x)
    assert logits.shape == (2, model.config.num_windows(x.shape[-1]), 3) == (2, 11, 3)
    torch.testing.assert_close(model(10 * x), logits, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="shorter than one presence window"):
        model(torch.randn(1, 100))
    model.save_pretrained(tmp_path / "m")
    again = load_pretrained(tmp_path / "m")
    assert isinstance(again, PresenceClassifier) and again.classes == ["a", "b", "c"]
    torch.testing.assert_close(again(x), logits)
    # long recordings in chunks: the same window grid
    probs = model.probabilities(x[0], chunk_seconds=1.0)
    assert probs.shape == (11, 3) and (probs >= 0).all() and (probs <= 1).all()
    whole = model.probabilities(x[0], chunk_seconds=100.0)  # one chunk: the windows' samples
    torch.testing.assert_close(whole, torch.sigmoid(model(x[:1, : 10 * 2000 + 4000])[0]))


def test_windows_must_lie_on_the_stft_grid():
    with pytest.raises(ValueError, match="multiples of hop"):
        PresenceConfig(window_seconds=0.5, hop=64)


def test_gates_silence_sources_outside_a_span_and_depend_only_on_the_seed():
    shape = (4, 3, 1000)
    gates = activity_gates(shape, 1.0, 0.3, 10, torch.Generator().manual_seed(0))
    again = activity_gates(shape, 1.0, 0.3, 10, torch.Generator().manual_seed(0))
    assert torch.equal(gates, again) and gates.shape == shape
    active = (gates > 0).float()
    lengths = active.sum(-1)
    assert (lengths >= 0.3 * 1000 - 2).all() and (lengths < 1000).all()
    starts = active.argmax(-1)  # one contiguous span: active samples = [start, start + length)
    for b in range(4):
        for s in range(3):
            start, length = int(starts[b, s]), int(lengths[b, s])
            assert active[b, s, start : start + length].all()
    assert (gates.amax(-1) == 1).all()  # full gain inside, beyond the fades
    ungated = activity_gates(shape, 0.0, 0.3, 10, torch.Generator().manual_seed(0))
    assert (ungated == 1).all()


def test_objective_targets_come_from_the_gated_references():
    config = PresenceConfig(classes=["speech", "sfx"], **TINY)
    objective = PresenceObjective(PresenceObjectiveConfig(gate_prob=1.0), config)
    references = torch.randn(2, 2, 16000)
    batch = {"references": references, "prompts": [["speech", "sfx"], ["sfx", "sfx"]]}
    mixture, targets = objective.prepare(batch, step=3)
    mixture2, targets2 = objective.prepare(batch, step=3)
    assert torch.equal(mixture, mixture2) and torch.equal(targets, targets2)  # keyed on step
    other_micro, _ = objective.prepare(batch, step=3, micro=1)
    assert not torch.equal(mixture, other_micro)  # each accumulated micro-batch draws anew
    gates = activity_gates((2, 2, 16000), 1.0, 0.2, 160, keyed_generator(0, 3, 0))
    gated = references * gates
    floor = mixture - gated.sum(1)  # the noise floor: −60…−25 dB below the mixture
    level = 10 * torch.log10(floor.pow(2).mean(-1) / gated.sum(1).pow(2).mean(-1))
    assert (level > -60.01).all() and (level < -24.99).all()
    off = PresenceObjective(PresenceObjectiveConfig(gate_prob=1.0, noise_floor_db=None), config)
    torch.testing.assert_close(off.prepare(batch, step=3)[0], gated.sum(1))
    expected = class_presence(
        presence_targets(gated, config.window, config.window_hop, -30.0),
        batch["prompts"],
        config.classes,
    )
    assert torch.equal(targets, expected)
    assert targets[1, :, 0].sum() == 0  # no speech in example 1
    terms = objective(PresenceClassifier(config), batch, step=3)
    assert terms["loss"].requires_grad and 0 < float(terms["loss"].detach()) < 5
