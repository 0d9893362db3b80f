"""Both contrastive losses against naive loop implementations written from the definitions."""

from __future__ import annotations

import math

import pytest
import torch

from liploc_ros.errors import ConfigError
from liploc_ros.model.loss import AuthorsContrastiveLoss, ClipLoss, make_loss


def _dot(a, b) -> float:
    return sum(float(x) * float(y) for x, y in zip(a, b, strict=True))


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def naive_authors_loss(L: torch.Tensor, C: torch.Tensor, T: float) -> float:
    n = L.shape[0]
    logits = [[_dot(L[i], C[j]) / T for j in range(n)] for i in range(n)]
    sim = [[(_dot(C[i], C[j]) + _dot(L[i], L[j])) / 2 * T for j in range(n)] for i in range(n)]
    targets = []
    for i in range(n):
        z = _logsumexp(sim[i])
        targets.append([math.exp(sim[i][j] - z) for j in range(n)])
    total = 0.0
    for i in range(n):
        row_lse = _logsumexp([logits[i][j] for j in range(n)])
        lidar_loss = -sum(targets[i][j] * (logits[i][j] - row_lse) for j in range(n))
        # logits^T row i is column i of logits; targets^T row i is column i of targets
        col_lse = _logsumexp([logits[j][i] for j in range(n)])
        camera_loss = -sum(targets[j][i] * (logits[j][i] - col_lse) for j in range(n))
        total += (camera_loss + lidar_loss) / 2
    return total / n


def naive_clip_loss(L: torch.Tensor, C: torch.Tensor, logit_scale: float) -> float:
    n = L.shape[0]
    scale = min(math.exp(logit_scale), 100.0)
    logits = [[scale * _dot(L[i], C[j]) for j in range(n)] for i in range(n)]
    lidar = sum(_logsumexp(logits[i]) - logits[i][i] for i in range(n)) / n
    camera = sum(_logsumexp([logits[j][i] for j in range(n)]) - logits[i][i] for i in range(n))
    return (lidar + camera / n) / 2


def _pair(n: int = 6, d: int = 8, seed: int = 0, scale: float = 0.5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * scale, torch.randn(n, d, generator=g) * scale


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.5])
def test_authors_loss_matches_the_naive_definition(temperature):
    L, C = _pair()
    got = AuthorsContrastiveLoss(temperature)(L, C)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(naive_authors_loss(L.double(), C.double(), temperature),
                                       rel=1e-5, abs=1e-6)  # fmt: skip


def test_authors_loss_argument_order_is_lidar_then_camera():
    # The targets are row-softmaxed, so swapping the modalities changes the value: the
    # argument order (lidar, camera) is part of the definition.
    L, C = _pair(seed=3)
    loss = AuthorsContrastiveLoss(0.7)
    assert loss(C, L).item() == pytest.approx(naive_authors_loss(C, L, 0.7), rel=1e-5)
    assert loss(C, L).item() != pytest.approx(loss(L, C).item(), rel=1e-4)


@pytest.mark.parametrize("init_temperature", [0.07, 0.3, 1.0])
def test_clip_loss_matches_the_naive_definition(init_temperature):
    L, C = _pair(seed=1)
    loss = ClipLoss(init_temperature)
    expected = naive_clip_loss(L.double(), C.double(), math.log(1 / init_temperature))
    assert loss(L, C).item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert loss.temperature == pytest.approx(init_temperature)


def test_clip_scale_is_clipped_at_100():
    L, C = _pair(seed=2, scale=0.1)
    loss = ClipLoss(0.001)  # exp(logit_scale) = 1000 -> clipped to 100
    assert loss(L, C).item() == pytest.approx(naive_clip_loss(L, C, math.log(1000)), rel=1e-5)
    assert naive_clip_loss(L, C, math.log(1000)) == pytest.approx(
        naive_clip_loss(L, C, math.log(100))
    )
    assert loss.temperature == pytest.approx(0.01)


def test_clip_logit_scale_is_learnt():
    L, C = _pair(seed=4)
    L.requires_grad_(True)
    loss = make_loss("clip")
    assert [name for name, _ in loss.named_parameters()] == ["logit_scale"]
    assert loss.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    loss(L, C).backward()
    assert loss.logit_scale.grad is not None
    assert loss.logit_scale.grad.abs().item() > 0
    assert L.grad is not None
    assert L.grad.abs().sum() > 0
    fixed = make_loss("clip", learnable=False)
    assert list(fixed.parameters()) == []


def test_authors_loss_has_no_parameters_and_passes_gradients():
    L, C = _pair(seed=5)
    C.requires_grad_(True)
    loss = make_loss("authors", temperature=1.0)
    assert isinstance(loss, AuthorsContrastiveLoss)
    assert list(loss.parameters()) == []
    loss(L, C).backward()
    assert C.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["authors", "clip"])
def test_aligned_pairs_score_lower_than_shuffled_ones(name):
    g = torch.Generator().manual_seed(7)
    emb = torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=1) * 2
    noise = 0.05 * torch.randn(8, 16, generator=g)
    loss = make_loss(name)
    aligned = loss(emb, emb + noise)
    shuffled = loss(emb, (emb + noise)[torch.roll(torch.arange(8), 1)])
    assert aligned.item() < shuffled.item()


def test_low_precision_inputs_are_computed_in_fp32():
    L, C = _pair(seed=8)
    loss = AuthorsContrastiveLoss()
    low = loss(L.bfloat16(), C.bfloat16())
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(loss(L.bfloat16().float(), C.bfloat16().float()).item())


def test_bad_shapes_and_names_are_rejected():
    L, C = _pair()
    with pytest.raises(ValueError, match="same shape"):
        AuthorsContrastiveLoss()(L, C[:3])
    with pytest.raises(ValueError, match="N x D"):
        ClipLoss()(L[0], C[0])
    with pytest.raises(ConfigError, match="unknown loss"):
        make_loss("triplet")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="temperature"):
        make_loss("authors", temperature=0.0)
