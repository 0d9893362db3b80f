"""Exceptions raised by liploc_ros.

Library code raises these (chaining the original cause with ``from``); only the CLI and the
ROS nodes turn them into exit codes and log lines. Every subclass derives from
:class:`LiplocError`, so a caller can catch the whole family at once.
"""

from __future__ import annotations


class LiplocError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(LiplocError):
    """A configuration file or value is invalid (unknown key, wrong type, bad range)."""


class PreprocessError(LiplocError):
    """Input data cannot be turned into a model input (empty cloud, bad image)."""


class EmptyCloudError(PreprocessError):
    """A point cloud holds no usable point (empty, all NaN, or all out of range)."""


class ImageFormatError(PreprocessError):
    """An image has an unsupported encoding, shape or dtype."""


class CheckpointError(LiplocError):
    """A model file is missing, corrupt, truncated or does not fit the model."""


class ModelMismatchError(LiplocError):
    """Two artefacts were made by different models (a map and the localizer's model)."""


class DeviceError(LiplocError):
    """The requested compute device or precision is not available."""


class DatasetError(LiplocError):
    """A dataset on disk or in a bag is missing, malformed or inconsistent."""


class MapError(LiplocError):
    """A map database is missing, corrupt or inconsistent."""


class BackendError(LiplocError):
    """An inference backend (OpenVINO, ONNX Runtime) cannot convert, load or run a model."""


class BackendUnavailableError(BackendError):
    """An optional inference backend is not installed; the message names the pip extra."""


class VerificationError(BackendError):
    """A reduced-precision encoder (INT8, bf16, fp16) failed its check against fp32 on held-out
    frames (embedding cosine, Recall@1 against an fp32 map); the message gives the figures."""
