"""The identity written into every converted or exported encoder file.

Both ONNX (``metadata_props``) and OpenVINO IR (``rt_info``) hold string maps; the same
``liploc.*`` keys go into both, so that whoever runs an exported encoder can tell which
model made it and check it against a map's fingerprint.
"""

from __future__ import annotations

import json

from liploc_ros import __version__
from liploc_ros.config import to_dict
from liploc_ros.model.backends.base import INPUT_NAME, OUTPUT_NAME, Side, input_size
from liploc_ros.model.liploc_file import LoadedModel

PREFIX = "liploc."
FINGERPRINT = PREFIX + "fingerprint"


def encoder_metadata(loaded: LoadedModel, side: Side) -> dict[str, str]:
    """The ``liploc.*`` string entries of one encoder's file."""
    size = input_size(loaded, side)
    return {
        FINGERPRINT: loaded.fingerprint,
        PREFIX + "sha256": loaded.sha256,
        PREFIX + "model_name": loaded.model_config.name,
        PREFIX + "encoder": side,
        PREFIX + "input": f"{INPUT_NAME} float32 [batch, 3, {size}, {size}], preprocessed",
        PREFIX + "output": f"{OUTPUT_NAME} float32 [batch, {loaded.embed_dim}]",
        PREFIX + "normalized": json.dumps(loaded.normalize),
        PREFIX + "preprocess_config": json.dumps(to_dict(loaded.preprocess), sort_keys=True),
        PREFIX + "liploc_ros_version": __version__,
    }
