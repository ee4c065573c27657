"""TUSS (Saijo et al., ICASSP 2025): task-aware unified source separation by prompting."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from einops import rearrange, repeat
from torch import nn

from wildsep.models.backbone import Backbone, build_codec, cross_stack, tse_stack
from wildsep.models.bands import band_widths
from wildsep.models.config import SeparatorConfig, TUSSConfig
from wildsep.models.pretrained import PretrainedModel
from wildsep.models.stft import STFT, complex_mul

log = logging.getLogger(__name__)

Prompts = Sequence[str] | Sequence[Sequence[str]] | torch.Tensor


class TUSS(PretrainedModel):
    """Separate one source per prompt; any number of prompts per call, duplicates allowed.

    Encoder features X (B, T', Q, D). Per band, the time sequence [p_1 … p_N, SOS, x_1 … x_T']
    (prompt vectors broadcast over bands) goes through the cross-prompt blocks, where prompts
    and frames attend to each other. The prompt outputs P_n (band-specific now) condition the
    frames element-wise, X ⊙ P_n; the shared TSE blocks then run on all N conditioned copies as
    one batch (B·N), and the mask decoder gives one complex mask per prompt. Duplicate prompts
    differ only by position, which the rotary attention and the time-axis convolutions see.
    """

    config_class = TUSSConfig

    def __init__(self, config: TUSSConfig) -> None:
        super().__init__(config)
        c = config
        self.stft = STFT(c.n_fft, c.hop, c.window, c.normalize)
        self.encoder, self.decoder = build_codec(c, n_outputs=1)
        # One row per name in config.prompts; a name list rather than a ParameterDict so the
        # lookup is one indexing op (no Python loop over prompts in forward).
        self.prompt_embeddings = nn.Parameter(torch.randn(len(c.prompts), c.dim))
        self.sos = nn.Parameter(torch.randn(c.dim))
        self.cross_blocks = cross_stack(c)
        self.tse_blocks = tse_stack(c)

    def prompt_ids(self, prompts: Sequence[str] | Sequence[Sequence[str]]) -> torch.Tensor:
        """Names → rows of the prompt table: (N,) for one list for the whole batch, (B, N) for
        one list per example (all of the same length)."""
        if isinstance(prompts, str) or not prompts:
            raise ValueError(f"pass a non-empty list of prompt names, got {prompts!r}")
        nested = not isinstance(prompts[0], str)
        rows = [list(row) for row in prompts] if nested else [list(prompts)]
        lookup = {name: i for i, name in enumerate(self.config.prompts)}
        unknown = sorted({name for row in rows for name in row} - lookup.keys())
        if unknown:
            raise ValueError(f"unknown prompts {unknown}; this model knows {list(lookup)}")
        if len({len(row) for row in rows}) != 1 or not rows[0]:
            raise ValueError("every example needs the same, non-zero number of prompts")
        ids = torch.tensor([[lookup[name] for name in row] for row in rows])
        return ids if nested else ids[0]

    def add_prompts(self, names: Sequence[str]) -> None:
        """Append fresh prompt vectors for new names; every existing weight is kept as it is.

        The prompt table becomes a new Parameter: build the optimiser after calling this.
        """
        names = [names] if isinstance(names, str) else list(names)
        taken = [n for n in names if n in self.config.prompts]
        if taken or len(set(names)) != len(names):
            raise ValueError(f"prompt names must be new and unique; already known: {taken}")
        old = self.prompt_embeddings.detach()
        fresh = torch.randn(len(names), old.shape[1], device=old.device, dtype=old.dtype)
        self.prompt_embeddings = nn.Parameter(torch.cat([old, fresh]))
        self.config = dataclasses.replace(self.config, prompts=(*self.config.prompts, *names))

    def forward(self, mix: torch.Tensor, prompts: Prompts) -> torch.Tensor:
        """mix: (B, T); prompts: N names, B lists of N names, or their ids (N,) / (B, N).

        Returns one estimate per prompt, (B, N, T), float32.
        """
        ids = prompts if isinstance(prompts, torch.Tensor) else self.prompt_ids(prompts)
        b = mix.shape[0]
        ids = ids.to(mix.device).expand(b, -1)  # (B, N)
        n = ids.shape[1]
        spec, scale = self.stft(mix)  # (B, T', F, 2)
        x = self.encoder(spec)  # (B, T', Q, D)
        tokens = torch.cat([self.prompt_embeddings[ids], self.sos.expand(b, 1, -1)], dim=1)
        z = torch.cat([repeat(tokens, "b n d -> b n q d", q=x.shape[2]), x], dim=1)
        for block in self.cross_blocks:
            z = block(z)
        prompt_out, x = z[:, :n], z[:, n + 1 :]  # SOS dropped
        z = rearrange(x[:, None] * prompt_out[:, :, None], "b n t q d -> (b n) t q d")
        for block in self.tse_blocks:
            z = block(z)
        mask = rearrange(self.decoder(z), "(b n) 1 t f c -> b n t f c", b=b)
        return self.stft.inverse(complex_mul(mask, spec[:, None]), scale, mix.shape[-1])

    @classmethod
    def from_backbone(
        cls, checkpoint_dir: str | Path, decoder_init: str | int = "mean", **overrides: object
    ) -> tuple[TUSS, TransferTable]:
        """A TUSS initialised from a saved `Backbone`, and the table of what was transferred.

        The TUSS config takes the backbone's geometry; `overrides` set other TUSSConfig fields
        (e.g. `prompts`), and overriding a geometry field with a different value is an error.
        See `transfer_backbone` for the mapping.
        """
        backbone = Backbone.from_pretrained(checkpoint_dir)
        config = TUSSConfig(**{**backbone.config.geometry(), **overrides})
        check_geometry(backbone.config, config, source=str(checkpoint_dir))
        tuss = cls(config)
        table = transfer_backbone(backbone, tuss, decoder_init)
        log.info("TUSS initialised from backbone %s:\n%s", checkpoint_dir, table)
        return tuss, table


def check_geometry(backbone: SeparatorConfig, tuss: SeparatorConfig, source: str = "") -> None:
    """ValueError naming every geometry field (and the band layout) where the configs differ."""
    expected, found = backbone.geometry(), tuss.geometry()
    expected["bands"] = band_widths(backbone.sample_rate, backbone.n_fft)
    found["bands"] = band_widths(tuss.sample_rate, tuss.n_fft)
    diff = [
        f"{k}: backbone has {v}, TUSS has {found[k]}" for k, v in expected.items() if v != found[k]
    ]
    if diff:
        where = f" {source}" if source else ""
        raise ValueError(f"backbone{where} does not fit this TUSS geometry: " + "; ".join(diff))


@dataclass
class TransferTable:
    """What `transfer_backbone` did with each parameter: rows of (TUSS name, source, status)."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def names(self, status: str) -> list[str]:
        return [name for name, _, s in self.rows if s == status]

    def __str__(self) -> str:
        width = max((len(name) for name, _, _ in self.rows), default=4)
        lines = [f"{'parameter':<{width}}  {'status':<8}  source"]
        lines += [f"{name:<{width}}  {status:<8}  {src}" for name, src, status in self.rows]
        counts = {s: len(self.names(s)) for s in ("copied", "derived", "new", "skipped")}
        return "\n".join([*lines, ", ".join(f"{v} {k}" for k, v in counts.items())])


def transfer_backbone(
    backbone: Backbone, tuss: TUSS, decoder_init: str | int = "mean"
) -> TransferTable:
    """Copy a backbone's weights into a TUSS of the same geometry (in place).

    encoder → encoder; blocks[:n₁] → cross_blocks, blocks[n₁:] → tse_blocks (copied exactly);
    decoder → decoder, where the final projection's M per-output slices (axis laid out as
    output × 4) become the single output slice: their mean (`decoder_init="mean"`, no output
    slot of an unconditional model is special) or slice m (`decoder_init=m`). The prompt table
    and SOS are new. Backbone tensors with no place in the TUSS are reported as skipped.
    """
    check_geometry(backbone.config, tuss.config)
    m = backbone.config.n_outputs
    if decoder_init != "mean" and decoder_init not in range(m):
        raise ValueError(
            f"decoder_init must be 'mean' or an output index < {m}, got {decoder_init}"
        )
    n_cross = backbone.config.cross_blocks
    target = tuss.state_dict()
    table = TransferTable()
    filled = set()
    for src, value in backbone.state_dict().items():
        name = src
        if src.startswith("blocks."):
            _, i, rest = src.split(".", 2)
            i = int(i)
            name = f"cross_blocks.{i}.{rest}" if i < n_cross else f"tse_blocks.{i - n_cross}.{rest}"
        if name not in target:
            table.rows.append(("", src, "skipped"))
            continue
        status = "copied"
        if value.shape != target[name].shape:
            value, status = _single_output(value, target[name].shape, m, decoder_init), "derived"
        with torch.no_grad():
            target[name].copy_(value)
        table.rows.append((name, src, status))
        filled.add(name)
    table.rows += [(name, "", "new") for name in target if name not in filled]
    return table


def _single_output(
    value: torch.Tensor, shape: torch.Size, m: int, decoder_init: str | int
) -> torch.Tensor:
    """Reduce the one axis where a decoder head tensor has M·k entries (TUSS: k) to k."""
    axes = [i for i, (a, b) in enumerate(zip(value.shape, shape, strict=False)) if a != b]
    if value.dim() != len(shape) or len(axes) != 1 or value.shape[axes[0]] != m * shape[axes[0]]:
        raise ValueError(f"cannot derive a single-output {tuple(shape)} from {tuple(value.shape)}")
    axis = axes[0]
    per_output = value.unflatten(axis, (m, shape[axis]))
    if decoder_init == "mean":
        return per_output.mean(axis)
    return per_output.select(axis, decoder_init)
