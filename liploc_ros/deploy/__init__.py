"""``liploc export``: encoders for other runtimes, ONNX (ONNX Runtime, TensorRT's trtexec,
Jetson), OpenVINO IR and TensorRT engines, each file carrying the model's fingerprint so that
a map still refuses a foreign model. The converters themselves live in
:mod:`liploc_ros.model.backends` (the inference backends convert through the same
functions); this package imports nothing, so import the module you need:

- :mod:`~liploc_ros.deploy.export`: ``export_model``, ``read_export``, ``EXPORT_FORMATS``
- :mod:`~liploc_ros.deploy.reduced_export`: INT8 and bf16 exports
- :mod:`~liploc_ros.deploy.tensorrt_export`: TensorRT engines
- :mod:`~liploc_ros.deploy.verify`: an export run in its own runtime against PyTorch fp32
"""
