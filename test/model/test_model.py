"""The dual encoder: architecture and key names, shapes, normalisation, the Embedder."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from liploc_ros.config import from_dict
from liploc_ros.errors import CheckpointError, ConfigError, PreprocessError
from liploc_ros.model import (
    Embedder,
    LoadedModel,
    ModelConfig,
    create_model,
    model_fingerprint,
    model_preset,
)
from liploc_ros.model.heads import ProjectionHead
from liploc_ros.preprocess.config import CameraConfig, PreprocessConfig
from liploc_ros.preprocess.tensors import camera_input, lidar_input


def _pre(camera: int, lidar: int) -> PreprocessConfig:
    return PreprocessConfig(camera=CameraConfig(image_size=camera), lidar_image_size=lidar)


@pytest.fixture(scope="module")
def vit_model():
    torch.manual_seed(0)
    return create_model(model_preset("liploc-vit-s16")).eval()


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(1)
    return create_model(model_preset("liploc-tiny"), _pre(64, 48)).eval()


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_vit_variant_has_the_authors_key_layout(vit_model):
    shapes = _shapes(vit_model)
    for side in ("camera", "lidar"):
        assert shapes[f"encoder_{side}.model.patch_embed.proj.weight"] == (384, 3, 16, 16)
        assert shapes[f"encoder_{side}.model.pos_embed"] == (1, 197, 384)
        assert shapes[f"encoder_{side}.fc.weight"] == (2048, 384)
        assert shapes[f"projection_{side}.projection.weight"] == (256, 2048)
        assert shapes[f"projection_{side}.fc.weight"] == (256, 256)
        assert shapes[f"projection_{side}.layer_norm.weight"] == (256,)
    prefixes = {k.split(".")[0] for k in shapes}
    assert prefixes == {"encoder_camera", "encoder_lidar", "projection_camera", "projection_lidar"}
    assert not any(k.startswith("encoder_camera.model.head.") for k in shapes)


def test_vit_encodes_to_256_and_normalizes_on_request(vit_model):
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        cam, lidar = vit_model(x, x)
        unit = vit_model.encode_lidar(x, normalize=True)
    assert cam.shape == lidar.shape == (2, 256)
    assert not torch.allclose(cam.norm(dim=1), torch.ones(2))  # the main variant: raw
    torch.testing.assert_close(unit.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(unit, torch.nn.functional.normalize(lidar, dim=1))


def test_resnet50_variant_has_no_fc_and_2048_features():
    model = create_model(model_preset("liploc-resnet50")).eval()
    shapes = _shapes(model)
    assert "encoder_camera.fc.weight" not in shapes
    assert shapes["encoder_lidar.model.conv1.weight"] == (64, 3, 7, 7)
    assert shapes["projection_camera.projection.weight"] == (256, 2048)
    with torch.inference_mode():
        assert model.encode_camera(torch.randn(2, 3, 64, 64)).shape == (2, 256)


@pytest.mark.parametrize(
    ("backbone", "features"), [("resnet18", 512), ("mobilenetv3_small_100", 1024)]
)
def test_any_timm_backbone_with_its_feature_size_discovered(backbone, features):
    config = model_preset(backbone)
    assert config.camera_backbone == config.lidar_backbone == backbone
    assert config.camera_fc_dim is None
    model = create_model(config, _pre(64, 64)).eval()
    assert model.projection_camera.projection.in_features == features
    with torch.inference_mode():
        assert model.encode_lidar(torch.randn(2, 3, 64, 64)).shape == (2, 256)


def test_vit_is_built_for_the_preprocessing_input_size():
    model = create_model(model_preset("liploc-vit-tiny", embed_dim=32), _pre(64, 96)).eval()
    shapes = _shapes(model)
    assert shapes["encoder_camera.model.pos_embed"] == (1, 1 + 4 * 4, 192)
    assert shapes["encoder_lidar.model.pos_embed"] == (1, 1 + 6 * 6, 192)
    with torch.inference_mode():
        assert model.encode_camera(torch.randn(2, 3, 64, 64)).shape == (2, 32)
        assert model.encode_lidar(torch.randn(2, 3, 96, 96)).shape == (2, 32)


def test_config_normalize_is_the_default_and_can_be_overridden():
    model = create_model(model_preset("resnet18", normalize=True, embed_dim=16), _pre(32, 32))
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(model.encode_camera(x).norm(dim=1), torch.ones(3))
        assert not torch.allclose(model.encode_camera(x, normalize=False).norm(dim=1),
                                  torch.ones(3))  # fmt: skip


def test_projection_head_is_residual_with_layer_norm():
    torch.manual_seed(2)
    head = ProjectionHead(10, 6, dropout=0.5).eval()
    x = torch.randn(4, 10)
    p = x @ head.projection.weight.T + head.projection.bias
    h = torch.nn.functional.gelu(p) @ head.fc.weight.T + head.fc.bias
    expected = torch.nn.functional.layer_norm(h + p, (6,), head.layer_norm.weight,
                                              head.layer_norm.bias)  # fmt: skip
    torch.testing.assert_close(head(x), expected)
    assert [n for n, _ in head.named_children()] == [
        "projection", "gelu", "fc", "dropout", "layer_norm"
    ]  # fmt: skip


def test_presets_and_config_validation():
    assert model_preset("liploc-vit-s16") == ModelConfig()
    assert model_preset("LIPLOC-RESNET50").global_pool == "avg"
    assert model_preset("liploc-vit-s16", normalize=True).normalize
    with pytest.raises(ConfigError, match="unknown model preset"):
        model_preset("liploc-vit-huge")
    with pytest.raises(ConfigError, match="embed_dim"):
        ModelConfig(embed_dim=0)
    with pytest.raises(ConfigError, match="dropout"):
        ModelConfig(dropout=1.0)
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(ModelConfig, {"camera_backbone": "resnet18", "embedding_dim": 3})
    assert from_dict(ModelConfig, {"camera_fc_dim": None}).camera_fc_dim is None


def test_unknown_backbone_is_a_config_error_with_suggestions():
    with pytest.raises(ConfigError, match=r"unknown timm backbone 'resnet19'.*resnet18"):
        create_model(model_preset("resnet19"))


def test_unavailable_pretrained_weights_give_a_clear_error(monkeypatch):
    import timm

    real = timm.create_model

    def offline(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("cannot reach huggingface.co")
        return real(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    config = model_preset("resnet18", pretrained=True, embed_dim=8)
    with pytest.raises(CheckpointError, match=r"ImageNet-pretrained weights.*'resnet18'"):
        create_model(config, _pre(32, 32))
    # loaders pass pretrained=False: a trained model never needs the hub
    assert create_model(config, _pre(32, 32), pretrained=False).config.pretrained


def _loaded(model) -> LoadedModel:
    return LoadedModel(
        model=model,
        model_config=model.config,
        preprocess=model.preprocess,
        fingerprint=model_fingerprint(model),
        sha256="",
    )


def test_embedder_returns_float32_numpy_matching_the_model(tiny_model):
    embedder = Embedder(_loaded(tiny_model), device="cpu", precision="fp32", batch_size=2)
    assert (embedder.precision, embedder.backend) == ("fp32", "torch")
    cams = np.random.default_rng(0).standard_normal((5, 3, 64, 64)).astype(np.float32)
    out = embedder.embed_camera(cams)
    assert out.dtype == np.float32
    assert out.shape == (5, 256)
    with torch.inference_mode():
        expected = tiny_model.encode_camera(torch.from_numpy(cams)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(embedder.embed_camera(torch.from_numpy(cams)), out)
    assert embedder.embed_lidar(np.zeros((0, 3, 48, 48), np.float32)).shape == (0, 256)


def test_embedder_rejects_inputs_the_model_was_not_made_for(tiny_model):
    embedder = Embedder(_loaded(tiny_model), device="cpu")
    with pytest.raises(PreprocessError, match=r"\(B, 3, 48, 48\)"):
        embedder.embed_lidar(np.zeros((2, 3, 64, 64), np.float32))
    with pytest.raises(PreprocessError, match=r"float32.*embed_images"):
        embedder.embed_camera(np.zeros((2, 3, 64, 64), np.uint8))
    with pytest.raises(ConfigError, match="batch_size"):
        Embedder(_loaded(tiny_model), batch_size=0)


def test_embedder_preprocesses_raw_images_and_scans(tiny_model):
    rng = np.random.default_rng(1)
    embedder = Embedder(_loaded(tiny_model), device="cpu", batch_size=2)
    pre = tiny_model.preprocess
    images = [rng.integers(0, 256, (40, 90, 3), dtype=np.uint8) for _ in range(3)]
    scans = []
    for _ in range(3):
        xyz = rng.uniform(-30, 30, (2000, 3)).astype(np.float32)
        xyz[:, 2] = rng.uniform(-2, 1, 2000)
        scans.append(np.hstack([xyz, rng.random((2000, 1), dtype=np.float32)]))
    np.testing.assert_array_equal(
        embedder.embed_images(images),
        embedder.embed_camera(np.stack([camera_input(im, pre) for im in images])),
    )
    bgr = [im[:, :, ::-1] for im in images]
    np.testing.assert_array_equal(embedder.embed_images(bgr, order="bgr"),
                                  embedder.embed_images(images))  # fmt: skip
    np.testing.assert_array_equal(
        embedder.embed_scans(scans),
        embedder.embed_lidar(np.stack([lidar_input(p, pre) for p in scans])),
    )


def test_model_fingerprint_tracks_the_weights(tiny_model):
    fp = model_fingerprint(tiny_model)
    assert len(fp) == 16
    assert model_fingerprint(tiny_model.state_dict()) == fp
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    state["projection_lidar.fc.bias"][3] += 1e-3
    assert model_fingerprint(state) != fp
    renamed = dict(state)
    renamed["x"] = renamed.pop("projection_lidar.fc.bias")
    assert model_fingerprint(renamed) != model_fingerprint(state)
    cast = dict(state)
    cast["projection_lidar.fc.bias"] = cast["projection_lidar.fc.bias"].double()
    assert model_fingerprint(cast) != model_fingerprint(state)
    assert dataclasses.is_dataclass(tiny_model.config)
