"""Encoders for other runtimes: ONNX (ONNX Runtime, TensorRT's trtexec, Jetson) and
OpenVINO IR, each file carrying the model's fingerprint so that a map still refuses a
foreign model. ``liploc export`` is the command line; the inference backends in
:mod:`liploc_ros.model.backends` convert through the same functions."""

from liploc_ros.deploy.export import EXPORT_FORMATS, export_model, read_export

__all__ = ["EXPORT_FORMATS", "export_model", "read_export"]
