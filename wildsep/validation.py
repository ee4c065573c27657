"""Validation of unconditional separators during training.

`UnconditionalValidation(model, step)` returns scalars and a few audio examples, the form the
engine's `validate` hook takes (floats are logged as scalars; 1-D tensors as audio plus a
spectrogram image):

- on held-out mixtures of mixtures: the MixIT loss ("loss", what the plateau schedule watches
  by default) and MoMi, the SI-SNR improvement of the MixIT-remixed outputs over the MoM;
- on a labeled validation set, when given: SI-SNRi of the outputs matched to the active
  references of the multi-source examples (FUSS MSi), also per number of sources
  ("si_snri/<n>_sources") and per class ("si_snri/<class>"); the SI-SNR of the matched output
  of the single-source examples (FUSS SS), also per class ("single_source_si_snr/<class>");
  the FUSS under/equal/over-separation rates; the mean number of active outputs for each
  number of true sources;
- on held-out dynamic mixtures of labeled sources, when given: the supervised PIT loss of the
  M outputs against the references padded with silence ("supervised_loss"; also "loss" when
  there are no MoM batches, i.e. in a run of supervised stages only);
- on held-out batches of fixed stems (B, S, [C,] T), when given: the stems objective's loss
  ("stems_loss", overall and "stems_loss/<stem>"; also "loss" when there are neither MoM nor
  dynamic-mixing batches) and per stem, over the examples where it sounds, the SNR of its
  output with channels concatenated (the MDX "utterance SDR"), "snr/<stem>", its SI-SNR,
  "si_snr/<stem>", and, with fast_bss_eval installed, the BSS-eval SDR of 1 s windows (median
  over the windows and channels of all examples), "sdr/<stem>".
"""

from __future__ import annotations

import importlib.util
import math
from collections import defaultdict
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from losses import mixit, pit, si_snr, snr
from wildsep.metrics import (
    active_references,
    match_outputs,
    separation_counts,
    source_metrics,
    windowed_sdr,
)
from wildsep.objectives.stems import StemsObjectiveConfig, stem_losses
from wildsep.objectives.supervised import supervised_pit
from wildsep.objectives.tuss import prompt_groups


def _means(groups: dict[str, list[float]], prefix: str) -> dict[str, float]:
    return {f"{prefix}/{key}": sum(v) / len(v) for key, v in sorted(groups.items())}


class UnconditionalValidation:
    """Callable validation of a model mapping (B, T) → (B, M, T).

    Args:
        mom_batches: fixed held-out batches {"mixture": (B, T), "references": (B, 2, T)}.
        labeled: fixed examples {"mixture": (T,), "references": (N, T)}, optionally
            "classes" (N names) for the per-class scores (silent references are ignored).
        audio_examples: how many labeled examples to log as audio (mixture and outputs).
        mixing_batches: fixed held-out batches {"mixture": (B, T), "references": (B, N, T)}
            of dynamic mixtures, N ≤ M, for "supervised_loss".
        loss_fn: the supervised pair loss `loss(est, ref, mixture)` (e.g. `losses.tuss_loss`);
            needed with `mixing_batches`.
        stem_batches: fixed held-out batches {"mixture": (B, [C,] T), "references": (B, S,
            [C,] T)} of the S stems of `stems` in order, output s answering stem s.
        stems: the stems objective's settings (the stems' names and the loss); needed with
            `stem_batches`.
        sample_rate: the rate of `stem_batches`, for the BSS-eval SDR of 1 s windows; None
            skips the SDR.
    """

    def __init__(
        self,
        mom_batches: Sequence[dict[str, Tensor]],
        labeled: Sequence[dict] = (),
        audio_examples: int = 2,
        mixing_batches: Sequence[dict[str, Tensor]] = (),
        loss_fn: Callable[..., Tensor] | None = None,
        stem_batches: Sequence[dict[str, Tensor]] = (),
        stems: StemsObjectiveConfig | None = None,
        sample_rate: int | None = None,
    ) -> None:
        if mixing_batches and loss_fn is None:
            raise ValueError("UnconditionalValidation: mixing_batches need a loss_fn")
        if stem_batches and stems is None:
            raise ValueError("UnconditionalValidation: stem_batches need the stems settings")
        self.stem_batches, self.stems, self.sample_rate = list(stem_batches), stems, sample_rate
        self.mom_batches, self.labeled, self.audio_examples = (
            list(mom_batches),
            list(labeled),
            audio_examples,
        )
        self.mixing_batches, self.loss_fn = list(mixing_batches), loss_fn

    @torch.no_grad()
    def __call__(self, model: nn.Module, step: int) -> dict[str, float | Tensor]:
        device = next(model.parameters()).device
        out: dict[str, float | Tensor] = {}
        if self.mom_batches:
            losses, momi = [], []
            for batch in self.mom_batches:
                mom, refs = batch["mixture"].to(device), batch["references"].to(device)
                result = mixit(model(mom).float(), refs)
                losses.append(result.loss)
                base = si_snr(mom.unsqueeze(1).expand_as(refs), refs)
                momi.append((si_snr(result.remixed, refs) - base).mean(-1))
            out["loss"] = torch.cat(losses).mean().item()
            out["momi"] = torch.cat(momi).mean().item()
        if self.mixing_batches:
            losses = []
            for batch in self.mixing_batches:
                mixture, refs = batch["mixture"].to(device), batch["references"].to(device)
                result, _ = supervised_pit(model(mixture).float(), refs, mixture, self.loss_fn)
                losses.append(result.loss)
            out["supervised_loss"] = torch.cat(losses).mean().item()
            out.setdefault("loss", out["supervised_loss"])
        if self.stem_batches:
            out.update(self._stems(model, device))
            out.setdefault("loss", out["stems_loss"])
        if self.labeled:
            out.update(self._labeled(model, device))
        return out

    def _stems(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        assert self.stems is not None
        names = self.stems.stems
        losses, snrs, si_snrs, sdrs = [], defaultdict(list), defaultdict(list), defaultdict(list)
        with_sdr = self.sample_rate is not None and importlib.util.find_spec("fast_bss_eval")
        for batch in self.stem_batches:
            mixture, refs = batch["mixture"].to(device), batch["references"].to(device)
            est = model(mixture).float()
            losses.append(stem_losses(est, refs, mixture, self.stems))  # (B, S)
            flat_est, flat_ref = est.flatten(2), refs.float().flatten(2)  # (B, S, C·T)
            active = active_references(flat_ref)
            values = {"snr": snr(flat_est, flat_ref), "si_snr": si_snr(flat_est, flat_ref)}
            for s, name in enumerate(names):
                sounding = active[:, s]
                snrs[name] += values["snr"][sounding, s].tolist()
                si_snrs[name] += values["si_snr"][sounding, s].tolist()
                if with_sdr:  # every channel of every example: (B·C, T) rows
                    rows_est = est[:, s].reshape(-1, est.shape[-1]).cpu()
                    rows_ref = refs[:, s].float().reshape(-1, refs.shape[-1]).cpu()
                    window = round(self.sample_rate)  # type: ignore[arg-type]
                    sdrs[name] += windowed_sdr(rows_est, rows_ref, window).tolist()
        per_stem = torch.cat(losses).mean(0)
        out = {"stems_loss": per_stem.mean().item()}
        for s, name in enumerate(names):
            out[f"stems_loss/{name}"] = per_stem[s].item()
            for key, groups in (("snr", snrs), ("si_snr", si_snrs)):
                if groups[name]:
                    out[f"{key}/{name}"] = sum(groups[name]) / len(groups[name])
            finite = [v for v in sdrs[name] if not math.isnan(v)]
            if finite:
                out[f"sdr/{name}"] = float(torch.tensor(finite).median())
        return out

    def _labeled(self, model: nn.Module, device: torch.device) -> dict[str, float | Tensor]:
        improvements, single, under, equal, over = [], [], 0, 0, 0
        counts: list[tuple[int, int]] = []
        by_count: dict[str, list[float]] = defaultdict(list)  # SI-SNRi per number of sources
        by_class: dict[str, list[float]] = defaultdict(list)  # SI-SNRi per class
        single_by_class: dict[str, list[float]] = defaultdict(list)  # SS per class
        media: dict[str, Tensor] = {}
        for i, example in enumerate(self.labeled):
            mixture = example["mixture"].to(device)
            refs = example["references"].to(device)
            est = model(mixture.unsqueeze(0))[0].float()  # (M, T)
            active = active_references(refs)
            classes = example.get("classes") or []
            names = [c for c, a in zip(classes, active.tolist(), strict=False) if a]
            refs = refs[active]
            if refs.shape[0]:
                chosen = match_outputs(est, refs)
                scores = source_metrics(est[chosen], refs, mixture)
                # one source: the mixture is the reference, so SI-SNRi is meaningless (FUSS SS)
                is_single = refs.shape[0] == 1
                values = scores["si_snr" if is_single else "si_snri"]
                (single if is_single else improvements).append(values)
                if not is_single:
                    by_count[f"{refs.shape[0]}_sources"] += values.tolist()
                for name, value in zip(names, values.tolist(), strict=False):
                    (single_by_class if is_single else by_class)[name].append(value)
            n_est, n_ref = separation_counts(est, refs)
            counts.append((n_est, n_ref))
            under += n_est < n_ref
            equal += n_est == n_ref
            over += n_est > n_ref
            if i < self.audio_examples:
                media[f"example{i}/mixture"] = mixture.cpu()
                for m, output in enumerate(est):
                    media[f"example{i}/output{m}"] = output.cpu()
        count = max(1, len(self.labeled))
        out: dict[str, float | Tensor] = {
            "under_separation": under / count,
            "equal_separation": equal / count,
            "over_separation": over / count,
            # mean number of active outputs vs of true sources: sparsity should align them
            "active_outputs": sum(e for e, _ in counts) / count,
            "true_sources": sum(r for _, r in counts) / count,
        }
        for sources in sorted({r for _, r in counts}):
            active = [e for e, r in counts if r == sources]
            out[f"active_outputs/{sources}_sources"] = sum(active) / len(active)
        if improvements:
            out["si_snri"] = torch.cat(improvements).mean().item()
        if single:
            out["single_source_si_snr"] = torch.cat(single).mean().item()
        out.update(_means(by_count, "si_snri"))
        out.update(_means(by_class, "si_snri"))
        out.update(_means(single_by_class, "single_source_si_snr"))
        out.update(media)
        return out


class PromptedValidation:
    """Callable validation of a prompt-conditioned model (mixture, prompts) → (B, N, T).

    On labeled examples {"mixture": (T,), "references": (N, T), "classes": N names}: the TUSS
    loss ("loss") and SI-SNRi of the estimates matched by PIT within identical prompts, overall
    and per prompt ("si_snri/<prompt>"), plus a few examples as audio.
    """

    def __init__(self, labeled: Sequence[dict], loss_fn, audio_examples: int = 2) -> None:
        self.labeled, self.loss_fn, self.audio_examples = list(labeled), loss_fn, audio_examples

    @torch.no_grad()
    def __call__(self, model: nn.Module, step: int) -> dict[str, float | Tensor]:
        device = next(model.parameters()).device
        losses, per_prompt = [], {}
        media: dict[str, Tensor] = {}
        for i, example in enumerate(self.labeled):
            mixture = example["mixture"].to(device)
            refs = example["references"].to(device)
            prompts = [list(example["classes"])]
            est = model(mixture.unsqueeze(0), prompts).float()
            aligned = pit(
                est,
                refs.unsqueeze(0),
                loss=self.loss_fn,
                mixture=mixture.unsqueeze(0),
                groups=prompt_groups(prompts).to(device),
            )
            losses.append(aligned.loss)
            active = active_references(refs)
            scores = source_metrics(aligned.est[0], refs, mixture)["si_snri"]
            for name, value, is_active in zip(
                prompts[0], scores.tolist(), active.tolist(), strict=True
            ):
                if is_active:
                    per_prompt.setdefault(name, []).append(value)
            if i < self.audio_examples:
                media[f"example{i}/mixture"] = mixture.cpu()
                for n, (name, output) in enumerate(zip(prompts[0], aligned.est[0], strict=True)):
                    media[f"example{i}/{n}_{name}"] = output.cpu()
        out: dict[str, float | Tensor] = {"loss": torch.cat(losses).mean().item()}
        every = [v for values in per_prompt.values() for v in values]
        if every:
            out["si_snri"] = sum(every) / len(every)
        for name, values in sorted(per_prompt.items()):
            out[f"si_snri/{name}"] = sum(values) / len(values)
        out.update(media)
        return out
