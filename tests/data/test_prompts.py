"""The Markov prompt sampler respects maximum appearances and zero probabilities, and its
empirical first-prompt and transition frequencies match the configuration."""

import itertools

import numpy as np
import pytest

from wildsep.data import MarkovPromptSampler, PromptConfig

CHAIN = PromptConfig(
    initial={"speech": 0.5, "sfx": 0.3, "musicbg": 0.2, "drums": 0.0},
    transitions={
        "speech": {"speech": 0.2, "sfx": 0.5, "musicbg": 0.3},
        "sfx": {"speech": 0.6, "drums": 0.4},
        "musicbg": {"speech": 1.0},
        "drums": {"sfx": 0.7, "musicbg": 0.3},
    },
    max_appearances={"musicbg": 1, "drums": 1},
)


def _sequences(config: PromptConfig, length: int, count: int) -> list[list[str]]:
    sampler = MarkovPromptSampler(config)
    rng = np.random.default_rng(0)
    return [sampler.sample(length, rng) for _ in range(count)]


def test_max_appearances_and_zero_probabilities_are_respected() -> None:
    limits = CHAIN.max_appearances
    for seq in _sequences(CHAIN, 4, 3000):
        assert seq.count("musicbg") <= 1 and seq.count("drums") <= 1
        assert CHAIN.initial[seq[0]] > 0
        for t in range(1, len(seq)):
            prefix = seq[:t]

            def allowed(table: dict[str, float], prefix: list[str] = prefix) -> set[str]:
                return {
                    c for c, p in table.items() if p > 0 and prefix.count(c) < limits.get(c, 99)
                }

            # The previous prompt's row, unless exhausted by the limits; then the initial table.
            expected = allowed(CHAIN.transitions[seq[t - 1]]) or allowed(CHAIN.initial)
            assert seq[t] in expected, (seq, t)


def test_empirical_frequencies_match_the_configuration() -> None:
    unlimited = PromptConfig(CHAIN.initial, CHAIN.transitions, max_appearances={})
    sequences = _sequences(unlimited, 3, 20000)
    first = {c: sum(s[0] == c for s in sequences) / len(sequences) for c in CHAIN.initial}
    for c, p in CHAIN.initial.items():
        assert first[c] == pytest.approx(p, abs=0.015)
    for a, row in CHAIN.transitions.items():
        pairs = [(x, y) for s in sequences for x, y in itertools.pairwise(s) if x == a]
        assert len(pairs) > 500
        total = sum(row.values())
        for b in CHAIN.transitions:
            observed = sum(y == b for _, y in pairs) / len(pairs)
            assert observed == pytest.approx(row.get(b, 0.0) / total, abs=0.03), (a, b)


def test_impossible_lengths_and_bad_tables_are_clear_errors() -> None:
    tight = PromptConfig({"a": 1.0}, {"a": {"b": 1.0}, "b": {"a": 1.0}}, {"a": 1, "b": 1})
    assert sorted(MarkovPromptSampler(tight).sample(2, np.random.default_rng(0))) == ["a", "b"]
    with pytest.raises(ValueError, match="cannot produce 3 prompts"):
        MarkovPromptSampler(tight).sample(3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="no row for"):
        PromptConfig({"a": 1.0}, {"a": {"b": 1.0}})
    with pytest.raises(ValueError, match="not all zero"):
        PromptConfig({"a": 0.0}, {"a": {"a": 1.0}})
    with pytest.raises(ValueError, match="never draws"):
        MarkovPromptSampler(PromptConfig({"a": 1.0}, {"a": {"a": 1.0}}, {"zzz": 1}))


def test_default_chain_is_the_tuss_one() -> None:
    sampler = MarkovPromptSampler()
    assert set(sampler.classes) == {
        "speech", "sfx", "sfxbg", "drums", "bass", "vocals", "other", "musicbg"
    }  # fmt: skip
    for seq in _sequences(PromptConfig(), 5, 500):
        for once in ("sfxbg", "musicbg", "drums", "bass", "vocals", "other"):
            assert seq.count(once) <= 1
