"""Forward behaviour of every model: shapes, lengths, prompts, gradients, consistency, bf16."""

from collections.abc import Callable

import pytest
import torch

from wildsep.models import TUSS, PretrainedModel

Small = Callable[..., PretrainedModel]
ODD_LENGTH = 1001  # not a multiple of any hop

# N = 1…5 prompts, with duplicates from N = 2 on.
PROMPT_LISTS = [
    ["speech"],
    ["speech", "speech"],
    ["sfx", "speech", "sfx"],
    ["drums", "bass", "vocals", "drums"],
    ["other", "other", "other", "musicbg", "sfxbg"],
]


@pytest.mark.parametrize("name", ["tuss-medium", "tuss-large"])
@pytest.mark.parametrize("prompts", PROMPT_LISTS, ids=lambda p: f"N{len(p)}")
def test_tuss_gives_one_estimate_per_prompt(small: Small, name: str, prompts: list[str]) -> None:
    model = small(name)
    est = model(torch.randn(2, ODD_LENGTH), prompts)
    assert est.shape == (2, len(prompts), ODD_LENGTH)
    assert est.dtype == torch.float32
    assert torch.isfinite(est).all()


@pytest.mark.parametrize(
    ("name", "outputs"),
    [("locoformer-s", 2), ("locoformer-m", 2), ("backbone-medium", 8), ("backbone-large", 8)],
)
@pytest.mark.parametrize("length", [ODD_LENGTH, 37])
def test_unconditional_models_keep_the_input_length(
    small: Small, name: str, outputs: int, length: int
) -> None:
    est = small(name)(torch.randn(3, length))
    assert est.shape == (3, outputs, length)
    assert torch.isfinite(est).all()


@pytest.mark.parametrize("outputs", [2, 16, 32])
def test_backbone_output_count_and_mixture_consistency(small: Small, outputs: int) -> None:
    mix = torch.randn(2, 777)
    est = small("backbone-medium", n_outputs=outputs, mixture_consistency=True)(mix)
    assert est.shape == (2, outputs, 777)
    torch.testing.assert_close(est.sum(1), mix, atol=1e-5, rtol=1e-5)
    free = small("backbone-medium", n_outputs=outputs)(mix)
    assert (free.sum(1) - mix).abs().max() > 1e-2  # the projection is what made it consistent


def test_gradients_reach_every_used_prompt_and_no_other(small: Small) -> None:
    model = small("tuss-medium")
    used = ["vocals", "speech", "vocals"]
    model(torch.randn(2, 600), used).square().mean().backward()
    grad = model.prompt_embeddings.grad.abs().sum(-1)
    for name, g in zip(model.config.prompts, grad, strict=True):
        assert (g > 0) == (name in used), name
    assert model.sos.grad.abs().sum() > 0


def test_duplicate_prompts_give_different_outputs(small: Small) -> None:
    est = small("tuss-medium")(torch.randn(1, 800), ["sfx", "sfx", "sfx"])
    assert (est[:, 0] - est[:, 1]).abs().max() > 1e-4 * est.abs().max()
    assert (est[:, 1] - est[:, 2]).abs().max() > 1e-4 * est.abs().max()


def test_per_example_prompts_match_separate_calls(small: Small) -> None:
    model = small("tuss-medium")
    mix = torch.randn(2, 700)
    prompts = [["speech", "sfx"], ["bass", "bass"]]
    together = model(mix, prompts)
    for i in range(2):
        alone = model(mix[i : i + 1], prompts[i])
        torch.testing.assert_close(together[i : i + 1], alone, atol=1e-5, rtol=1e-5)
    ids = model.prompt_ids(prompts)
    assert ids.shape == (2, 2)
    torch.testing.assert_close(model(mix, ids), together)


def test_prompt_errors_name_the_known_prompts(small: Small) -> None:
    model = small("tuss-medium")
    mix = torch.randn(1, 300)
    with pytest.raises(ValueError, match=r"unknown prompts \['piano'\].*'speech'"):
        model(mix, ["speech", "piano"])
    with pytest.raises(ValueError, match="list of prompt names"):
        model(mix, "speech")
    with pytest.raises(ValueError, match="same"):
        model(torch.randn(2, 300), [["speech"], ["speech", "sfx"]])


def test_adding_a_prompt_keeps_every_old_weight(small: Small) -> None:
    model: TUSS = small("tuss-medium")
    mix = torch.randn(1, 500)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    old_out = model(mix, ["speech", "drums"])
    model.add_prompts(["piano", "birds"])
    after = model.state_dict()
    assert model.config.prompts[-2:] == ("piano", "birds")
    for k, v in before.items():
        torch.testing.assert_close(after[k][: len(v)], v, atol=0, rtol=0)
    assert after["prompt_embeddings"].shape[0] == len(before["prompt_embeddings"]) + 2
    torch.testing.assert_close(model(mix, ["speech", "drums"]), old_out, atol=0, rtol=0)
    assert model(mix, ["piano", "speech"]).shape == (1, 2, 500)
    with pytest.raises(ValueError, match="already known"):
        model.add_prompts(["speech"])


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("tuss-medium", {}),
        ("tuss-medium", {"encoder": "sfc"}),
        ("backbone-medium", {"encoder": "sfc"}),
        ("locoformer-m", {}),
    ],
)
def test_bf16_autocast_runs_in_float32_where_it_matters(
    small: Small, name: str, overrides: dict[str, object]
) -> None:
    model = small(name, **overrides)
    mix = torch.randn(2, 900)
    args = (["speech", "sfx"],) if name.startswith("tuss") else ()
    reference = model(mix, *args)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        est = model(mix, *args)
    assert est.dtype == torch.float32
    assert torch.isfinite(est).all()
    # bf16 matmuls only: close to float32, far from the relative error of a bf16 STFT path.
    error = (est - reference).norm() / reference.norm()
    assert error < 0.05, error


def test_sfc_encoder_variant_separates_with_prompts(small: Small) -> None:
    est = small("tuss-medium", encoder="sfc")(torch.randn(2, 555), ["speech", "speech", "sfx"])
    assert est.shape == (2, 3, 555)
    assert torch.isfinite(est).all()
