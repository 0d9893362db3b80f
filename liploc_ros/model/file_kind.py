"""What a model file is, told by its first bytes: the one answer every command and node uses.

A liploc model is a safetensors file (8-byte little-endian header length, then the JSON
header, ``{``); an authors' checkpoint is what ``torch.save`` writes (a zip archive, or a
pickle of protocol 2 to 5 for the legacy format). The name of the file says nothing: users
rename ``.pth`` files. Anything else gets one message, whichever command was given it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from liploc_ros.errors import CheckpointError

__all__ = ["ModelFileKind", "model_file_kind", "sniff_model_file"]

ModelFileKind = Literal["safetensors", "torch"]

#: a safetensors header longer than this is not one we wrote (the reader's own limit too)
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_ZIP = b"PK\x03\x04"
_PICKLE_PROTOCOLS = range(2, 6)


def sniff_model_file(path: str | Path) -> Literal["safetensors", "torch", "empty", "unknown"]:
    """The signature at the start of ``path``: ``safetensors``, ``torch``, ``empty`` or
    ``unknown`` (no check beyond the first bytes: the loaders check the rest)."""
    with Path(path).open("rb") as handle:
        head = handle.read(16)
    if not head:
        return "empty"
    if head.startswith(_ZIP) or (
        len(head) >= 2 and head[0] == 0x80 and head[1] in _PICKLE_PROTOCOLS
    ):
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{":
        length = int.from_bytes(head[:8], "little")
        if 2 <= length <= _MAX_HEADER_BYTES:
            return "safetensors"
    return "unknown"


def model_file_kind(path: str | Path) -> ModelFileKind:
    """``safetensors`` (a liploc model) or ``torch`` (an authors' .pth); a
    :class:`CheckpointError` for a missing, empty or unrecognised file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file {path} does not exist or is not a file")
    try:
        kind = sniff_model_file(path)
    except OSError as err:
        raise CheckpointError(f"cannot read model file {path}: {err.strerror or err}") from err
    if kind in ("safetensors", "torch"):
        return kind
    raise CheckpointError(
        f"{path} is neither a liploc .safetensors model nor a PyTorch .pth checkpoint "
        f"({'empty file' if kind == 'empty' else 'unknown signature'})"
    )
