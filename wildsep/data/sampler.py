"""Resumable, rank-aware batch samplers that hand out keys instead of bare indices.

A batch is a list of keys ``(epoch, position)`` (plus the number of sources for dynamic
mixing); the datasets turn each key into an example with a generator seeded by it. The sampler
itself only counts: step `s` of epoch `e` on rank `r` holds positions
``s·B·W + r·B … s·B·W + r·B + B − 1`` (B per-rank batch size, W world size), so ranks get
disjoint slices, any (rank, step) can be recomputed directly, and resuming is setting
``(epoch, step)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler

from wildsep.data.clips import STREAM_BATCH, keyed_rng

Key = tuple[int, ...]


class ResumableBatchSampler(Sampler[list[Key]]):
    """Batches of ``(epoch, position)`` keys over `num_items` positions per epoch.

    Iterating yields the rest of the current epoch, then moves to the next epoch, so
    ``for epoch in ...: for batch in loader: ...`` needs no ``set_epoch`` call (calling it with
    the epoch the sampler is already in keeps the position, so resumed runs may call it too).

    `drop_last` drops the incomplete last global batch; otherwise it is filled with positions
    wrapped around from the start of the epoch so every rank runs the same number of steps.

    Resuming: save ``{"epoch": e, "step": k}`` with k the number of batches the training loop
    consumed in epoch e, and pass it to :meth:`load_state_dict` before iterating. (With worker
    processes the loader prefetches, so :meth:`state_dict` — what was *handed out* — can run a
    few batches ahead of what was trained on.)
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
        epoch: int = 0,
    ) -> None:
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need batch_size >= 1 and 0 <= rank < world_size, got batch_size={batch_size}, "
                f"rank={rank}, world_size={world_size}"
            )
        global_batch = batch_size * world_size
        if num_items < (global_batch if drop_last else 1):
            raise ValueError(
                f"{num_items} items cannot fill one batch of {batch_size} on each of "
                f"{world_size} rank(s); use a smaller batch or drop_last=False"
            )
        self.num_items = num_items
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.epoch = epoch
        self.step = 0

    @property
    def steps_per_epoch(self) -> int:
        global_batch = self.batch_size * self.world_size
        if self.drop_last:
            return self.num_items // global_batch
        return math.ceil(self.num_items / global_batch)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def positions(self, step: int) -> list[int]:
        """Positions this rank reads at `step` of an epoch."""
        first = (step * self.world_size + self.rank) * self.batch_size
        return [(first + j) % self.num_items for j in range(self.batch_size)]

    def batch(self, epoch: int, step: int) -> list[Key]:
        """The keys of batch `step` of `epoch` on this rank (a pure function)."""
        return [(epoch, p) for p in self.positions(step)]

    def __iter__(self) -> Iterator[list[Key]]:
        epoch = self.epoch
        while self.step < self.steps_per_epoch:
            step = self.step
            self.step += 1
            yield self.batch(epoch, step)
        self.epoch, self.step = epoch + 1, 0

    def set_epoch(self, epoch: int) -> None:
        """Move to the start of `epoch` (no-op if already in it, to keep a resumed position)."""
        if epoch != self.epoch:
            self.epoch, self.step = epoch, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if not 0 <= state["step"] <= self.steps_per_epoch:
            raise ValueError(f"step {state['step']} outside epoch of {self.steps_per_epoch}")
        self.epoch, self.step = int(state["epoch"]), int(state["step"])


class FixedNumSourcesBatchSampler(ResumableBatchSampler):
    """Like :class:`ResumableBatchSampler`, with the number of sources N drawn per batch.

    Keys are ``(epoch, position, N)``. N is drawn from `num_sources` with `weights` by a
    generator keyed on (seed, epoch, step), the same on every rank, so all ranks of a step
    build batches of the same shape.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        num_sources: Sequence[int],
        weights: Sequence[float] | None = None,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
        epoch: int = 0,
    ) -> None:
        super().__init__(
            num_items,
            batch_size,
            rank=rank,
            world_size=world_size,
            drop_last=drop_last,
            epoch=epoch,
        )
        weights = list(weights) if weights is not None else [1.0] * len(num_sources)
        if len(weights) != len(num_sources) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"need one weight >= 0 per N in {list(num_sources)}, got {weights}")
        total = sum(weights)
        self.num_sources = [int(n) for n in num_sources]
        self.probabilities = [w / total for w in weights]
        self.seed = seed

    def num_sources_at(self, epoch: int, step: int) -> int:
        rng = keyed_rng(self.seed, STREAM_BATCH, epoch, step)
        return self.num_sources[int(rng.choice(len(self.num_sources), p=self.probabilities))]

    def batch(self, epoch: int, step: int) -> list[Key]:
        n = self.num_sources_at(epoch, step)
        return [(epoch, p, n) for p in self.positions(step)]
