"""Converted models, cached beside the model file and never used when stale.

A conversion (ONNX export, OpenVINO IR, INT8 calibration) takes seconds to minutes, so it is
done once per model, backend, precision (INT8: and calibration) and encoder, and kept in

    <model folder>/.liploc-cache/<model stem>-<fingerprint>/<backend>-<variant>/<encoder>/

where the variant is the precision, or ``int8-<calibration id>`` (see :mod:`.int8`). The
model's folder holds the automatic choice's measurements too (``auto/``, see :mod:`.auto`)
and the fp32 reference embeddings of the verification frames (``reference/``).

(in-memory models and read-only model folders: ``$LIPLOC_CACHE_DIR``, else
``$XDG_CACHE_HOME/liploc_ros`` or ``~/.cache/liploc_ros``). The folder's ``manifest.json``
records the key it was built for (the weights' SHA-256, everything else baked into the
graph, backend, precision, cache format) and the size and SHA-256 of every file. A folder
whose manifest is missing, unreadable, for another key, or whose files do not match it is
stale: it is rebuilt, with a warning saying why, never used. A folder is built under a
temporary name and renamed into place, so a crash or a concurrent build never leaves a
half-written cache where a reader looks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from liploc_ros import __version__
from liploc_ros.config import to_dict
from liploc_ros.errors import BackendError, VerificationError
from liploc_ros.io_utils import write_text_atomic
from liploc_ros.model.liploc_file import LoadedModel

log = logging.getLogger(__name__)

#: bump when what a cache folder holds changes meaning
CACHE_FORMAT = 2
MANIFEST = "manifest.json"
CACHE_FOLDER = ".liploc-cache"
T = TypeVar("T")


def graph_key(loaded: LoadedModel, backend: str, precision: str, **extra: Any) -> dict[str, Any]:
    """Everything a converted encoder depends on: the weights, the architecture (normalise or
    not), the input sizes, the backend, the precision, and ``extra`` (the encoder, an INT8
    model's calibration and quantizer settings)."""
    pre = loaded.preprocess
    key = {
        "cache_format": CACHE_FORMAT,
        "backend": backend,
        "precision": precision,
        "fingerprint": loaded.fingerprint,
        "sha256": loaded.sha256,
        "model_config": to_dict(loaded.model_config),
        "input_sizes": {"camera": pre.camera.image_size, "lidar": pre.lidar_image_size},
        **extra,
    }
    return json.loads(json.dumps(key))  # as it reads back from the manifest (lists, not tuples)


def user_cache_root() -> Path:
    """Where caches go when the model's own folder cannot hold them."""
    env = os.environ.get("LIPLOC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "liploc_ros"


def model_cache_root(loaded: LoadedModel, root: Path | None = None) -> Path:
    """The folder of everything cached for ``loaded`` (``root`` overrides where it goes):
    beside the model file where that folder is writable, else the user cache."""
    return cache_root_for(loaded.path, loaded.fingerprint, root)


def cache_root_for(path: Path | None, fingerprint: str, root: Path | None = None) -> Path:
    """:func:`model_cache_root` of the model file at ``path`` (None: an in-memory model)."""
    stem = path.stem if path is not None else "memory"
    leaf = Path(f"{stem}-{fingerprint}")
    if root is not None:
        return Path(root) / leaf
    if path is not None:
        beside = path.resolve().parent
        if os.access(beside, os.W_OK) or os.access(beside / CACHE_FOLDER, os.W_OK):
            return beside / CACHE_FOLDER / leaf
    return user_cache_root() / leaf


def cache_folder(
    loaded: LoadedModel,
    backend: str,
    variant: str,
    root: Path | None = None,
    *,
    side: str | None = None,
) -> Path:
    """The cache folder of (model, backend, variant), and of one encoder when ``side`` is
    given; ``root`` overrides where it goes."""
    folder = model_cache_root(loaded, root) / f"{backend}-{variant}"
    return folder / side if side is not None else folder


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """A cache folder's manifest (None: none, or unreadable)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stale_reason(folder: Path, key: Mapping[str, Any]) -> str | None:
    """Why ``folder`` cannot serve ``key`` (None: it can)."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return "no manifest" if folder.exists() else "not built yet"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        recorded_key, files = manifest["key"], manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"unreadable manifest ({err})"
    if recorded_key != dict(key):
        changed = sorted(
            k for k in set(recorded_key) | set(key) if recorded_key.get(k) != key.get(k)
        )
        return f"built for another {', '.join(changed)}"
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != entry.get("bytes") or _sha256(path) != entry.get("sha256"):
            return f"{name} changed since it was cached"
    return None


def _write_manifest(folder: Path, key: Mapping[str, Any]) -> None:
    files = {
        p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"key": dict(key), "files": files, "liploc_ros_version": __version__}
    write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))


def _install(built: Path, folder: Path) -> None:
    """Rename ``built`` to ``folder``, moving a stale ``folder`` aside first."""
    old = None
    if folder.exists():
        old = Path(tempfile.mkdtemp(prefix=".stale-", dir=folder.parent))
        os.replace(folder, old / "x")
    try:
        os.replace(built, folder)
    except OSError:
        # a concurrent build won the race; its folder is as good as ours
        if not folder.exists():
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def cached(
    folder: Path,
    key: Mapping[str, Any],
    build: Callable[[Path], None],
    load: Callable[[Path], T],
) -> T:
    """``load(folder)``, after (re)building ``folder`` with ``build(tmp)`` if it is stale.

    A folder that passes the manifest check but still fails to load is rebuilt once too; one
    whose model was refused by its verification (VerificationError) is not: the verdict is
    what was cached, and rebuilding would only repeat it.
    """
    reason = stale_reason(folder, key)
    if reason is None:
        try:
            return load(folder)
        except VerificationError:
            raise
        except BackendError as err:
            reason = f"it does not load ({err})"
    if folder.exists():
        log.warning("rebuilding the converted model in %s: %s", folder, reason)
    else:
        log.info("converting the model once for %s (cached in %s)", key["backend"], folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    except OSError as err:
        raise BackendError(f"cannot create the model cache {folder}: {err}") from err
    try:
        build(tmp)
        _write_manifest(tmp, key)
        _install(tmp, folder)
    except OSError as err:
        raise BackendError(f"cannot write the model cache {folder}: {err}") from err
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    return load(folder)
