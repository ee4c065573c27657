"""Prompt sequences from a Markov chain with per-class appearance limits (TUSS, reference §7)."""

from __future__ import annotations

import numpy as np

from wildsep.data.config import PromptConfig


class MarkovPromptSampler:
    """Draws sequences of prompt classes.

    The first prompt is drawn from the initial probabilities, each next one from the row of the
    previous prompt in the transition table. Classes that reached their maximum number of
    appearances are masked out and the remaining probabilities renormalised; if that empties a
    row, the initial probabilities (masked the same way) are used instead, and if those are
    empty too no valid sequence of that length exists and a ``ValueError`` says so.
    """

    def __init__(self, config: PromptConfig | None = None) -> None:
        config = (config or PromptConfig()).resolved()
        assert config.initial is not None and config.transitions is not None
        assert config.max_appearances is not None
        self.classes: list[str] = config.classes
        position = {c: i for i, c in enumerate(self.classes)}
        k = len(self.classes)
        self.initial = np.zeros(k)
        for c, p in config.initial.items():
            self.initial[position[c]] = p
        self.transitions = np.zeros((k, k))
        for a, row in config.transitions.items():
            for b, p in row.items():
                self.transitions[position[a], position[b]] = p
        unknown = set(config.max_appearances) - set(self.classes)
        if unknown:
            raise ValueError(
                f"prompts.max_appearances names classes {sorted(unknown)} that the chain never "
                f"draws; its classes are {self.classes}"
            )
        self.max_appearances = np.array(
            [config.max_appearances.get(c, np.iinfo(np.int64).max) for c in self.classes]
        )

    def transition_probabilities(self) -> np.ndarray:
        """Row-normalised transition matrix (K, K) in the order of :attr:`classes`."""
        return self.transitions / self.transitions.sum(axis=1, keepdims=True)

    def sample(self, length: int, rng: np.random.Generator) -> list[str]:
        """A sequence of `length` class names."""
        counts = np.zeros(len(self.classes), dtype=np.int64)
        sequence: list[int] = []
        for _ in range(length):
            allowed = counts < self.max_appearances
            weights = (self.transitions[sequence[-1]] if sequence else self.initial) * allowed
            if weights.sum() <= 0:
                weights = self.initial * allowed
            if weights.sum() <= 0:
                raise ValueError(
                    f"the prompt chain cannot produce {length} prompts: after "
                    f"{[self.classes[i] for i in sequence]} every class with nonzero probability "
                    f"has reached its max_appearances"
                )
            choice = int(rng.choice(len(weights), p=weights / weights.sum()))
            counts[choice] += 1
            sequence.append(choice)
        return [self.classes[i] for i in sequence]
