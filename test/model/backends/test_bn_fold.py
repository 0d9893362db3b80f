"""BatchNorm folding ahead of bf16: exact in fp32 where it applies, refused where it would
change the network."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from liploc_ros.model.backends.bn_fold import fold_batchnorm


def _batchnorms(module: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())


def _randomize(module: nn.Module) -> nn.Module:
    # trained-like statistics: default ones (mean 0, var 1, weight 1, bias 0) fold to nothing
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return module.eval()


@pytest.mark.parametrize("name", ["resnet18", "regnetx_002"])
def test_timm_backbones_fold_exactly(name):
    torch.manual_seed(0)
    backbone = _randomize(timm.create_model(name, num_classes=0))
    x = torch.randn(2, 3, 64, 64)
    folded = fold_batchnorm(backbone, x[:1])
    assert _batchnorms(backbone) > 10  # the original is untouched
    assert _batchnorms(folded) == 0
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), backbone(x), rtol=1e-4, atol=1e-5)


class PreActivation(nn.Module):
    """Norm before conv, with the names a post-activation block would use."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(torch.relu(self.bn1(x)))


def test_a_network_the_names_misdescribe_is_left_unfolded():
    block = _randomize(PreActivation())
    x = torch.randn(2, 3, 8, 8)
    kept = fold_batchnorm(block, x)
    assert _batchnorms(kept) == 1
    with torch.inference_mode():
        torch.testing.assert_close(kept(x), block(x))


def test_batchnorm_without_running_statistics_is_not_folded():
    seq = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False)).eval()
    assert _batchnorms(fold_batchnorm(seq, torch.randn(2, 3, 4, 4))) == 1
