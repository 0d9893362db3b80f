"""`liploc export`: ONNX (dynamic batch, for onnxruntime and TensorRT) and OpenVINO IR files
that give PyTorch fp32's embeddings and carry the model's fingerprint."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing

import numpy as np
import pytest
import torch
from backend_helpers import PARITY, SIZE, inputs, min_cosine, needs

from liploc_ros.cli import main
from liploc_ros.deploy.export import export_model, read_export
from liploc_ros.errors import (
    BackendUnavailableError,
    CheckpointError,
    ConfigError,
    ModelMismatchError,
)
from liploc_ros.mapdb.synthetic import synthetic_info, synthetic_map
from liploc_ros.model import Embedder


@pytest.fixture(scope="module")
def onnx_export(tiny_vit, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "onnx"
    assert main(["export", str(tiny_vit.path), "--format", "onnx", "--out", str(out)]) == 0
    return out


def _torch_fp32(model, x):
    embedder = Embedder(model, device="cpu", precision="fp32", backend="torch")
    return embedder.embed_camera(x), embedder.embed_lidar(x)


@pytest.mark.slow
@needs("onnxruntime")
def test_exported_onnx_run_by_onnxruntime_equals_torch(tiny_vit, onnx_export):
    import onnx
    import onnxruntime as ort

    for batch in (1, 7):  # the traced batch was 2: the batch axis must be dynamic
        x = inputs(batch, seed=batch)
        for side, expected in zip(("camera", "lidar"), _torch_fp32(tiny_vit, x), strict=True):
            session = ort.InferenceSession(str(onnx_export / f"{side}.onnx"))
            (got,) = session.run(None, {"image": x})
            assert got.shape == (batch, tiny_vit.embed_dim)
            assert min_cosine(got, expected) >= PARITY
            np.testing.assert_allclose(got, expected, atol=1e-4)
    graph = onnx.load(str(onnx_export / "camera.onnx"))
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param  # symbolic: what trtexec's --minShapes / --maxShapes need
    assert [d.dim_value for d in dims[1:]] == [3, SIZE, SIZE]
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["liploc.fingerprint"] == tiny_vit.fingerprint
    assert meta["liploc.encoder"] == "camera"
    assert json.loads(meta["liploc.normalized"]) is True


@pytest.mark.slow
@needs("onnxruntime")
def test_the_export_manifest_lets_a_map_refuse_a_foreign_model(tiny_vit, onnx_export):
    manifest = read_export(onnx_export)
    assert manifest["fingerprint"] == tiny_vit.fingerprint
    assert manifest["encoders"]["lidar"]["input"]["shape"] == ["batch", 3, SIZE, SIZE]
    trtexec = manifest["encoders"]["camera"]["trtexec"]
    assert f"--minShapes=image:1x3x{SIZE}x{SIZE}" in trtexec
    assert f"--maxShapes=image:32x3x{SIZE}x{SIZE}" in trtexec
    own = synthetic_map(20, tiny_vit.embed_dim, info=synthetic_info(
        tiny_vit.embed_dim, fingerprint=tiny_vit.fingerprint))  # fmt: skip
    own.check_model(manifest["fingerprint"])
    foreign = synthetic_map(20, tiny_vit.embed_dim, info=synthetic_info(
        tiny_vit.embed_dim, fingerprint="feedfacefeedface"))  # fmt: skip
    with pytest.raises(ModelMismatchError, match="feedfacefeedface"):
        foreign.check_model(manifest["fingerprint"])


@pytest.mark.slow
@needs("onnxruntime")
def test_read_export_catches_a_manifest_that_does_not_fit_its_files(onnx_export, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(onnx_export, copy)
    manifest = json.loads((copy / "liploc_export.json").read_text())
    (copy / "liploc_export.json").write_text(json.dumps({**manifest, "fingerprint": "0" * 16}))
    with pytest.raises(CheckpointError, match="was made by model"):
        read_export(copy)
    (copy / "liploc_export.json").write_text(json.dumps(manifest))
    (copy / "lidar.onnx").unlink()
    with pytest.raises(CheckpointError, match=r"lidar encoder lidar\.onnx is missing"):
        read_export(copy)
    with pytest.raises(CheckpointError, match="not a liploc export manifest"):
        read_export(tmp_path)


@pytest.mark.slow
@needs("openvino")
def test_openvino_export_verifies_and_carries_the_fingerprint(tiny_vit, tmp_path, capsys):
    import openvino as ov

    out = tmp_path / "ov"
    args = ["export", str(tiny_vit.path), "--format", "openvino", "--out", str(out), "--verify"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "verified against PyTorch fp32: min cosine camera 1.0000" in printed
    assert read_export(out)["format"] == "openvino"
    assert sorted(p.name for p in out.iterdir()) == [
        "camera.bin", "camera.xml", "lidar.bin", "lidar.xml", "liploc_export.json"]  # fmt: skip
    x = inputs(3)
    compiled = ov.Core().compile_model(str(out / "lidar.xml"), "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32"})  # fmt: skip
    got = np.asarray(compiled([x])[0])
    np.testing.assert_allclose(got, _torch_fp32(tiny_vit, x)[1], atol=1e-4)


def test_export_without_the_exporter_names_the_extra(tiny_vit, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnxscript" else real(n, *a)
    )
    with pytest.raises(BackendUnavailableError, match=r"onnxscript.*liploc_ros\[onnx\]"):
        export_model(tiny_vit, tmp_path / "out", "onnx")
    with pytest.raises(ConfigError, match="unknown export format 'tflite'"):
        export_model(tiny_vit, tmp_path / "out", "tflite")
    assert not (tmp_path / "out").exists()


def _backward_in_child(queue) -> None:
    x = torch.randn(3, requires_grad=True)
    (x * 2).sum().backward()
    queue.put("ok")


@pytest.mark.slow
@needs("onnxruntime")
def test_exporting_leaves_forked_training_working(onnx_export):
    # the dynamo exporter, run in this process, would break autograd in forked children
    x = torch.randn(3, requires_grad=True)
    (x * 2).sum().backward()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_backward_in_child, args=(queue,))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == "ok"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_tensorrt_export_without_a_gpu_or_tensorrt_says_what_is_missing(tiny_vit, tmp_path):
    from liploc_ros.errors import DeviceError

    with pytest.raises((BackendUnavailableError, DeviceError), match=r"tensorrt|GPU"):
        export_model(tiny_vit, tmp_path / "trt", "tensorrt", precision="fp16")
    with pytest.raises(ConfigError, match="exports fp32 or fp16, not int8"):
        export_model(tiny_vit, tmp_path / "trt", "tensorrt", precision="int8")
    assert not (tmp_path / "trt" / "liploc_export.json").exists()
