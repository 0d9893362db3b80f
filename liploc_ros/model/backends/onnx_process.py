"""The ONNX export run in a child Python process, so the caller's torch stays clean.

torch.onnx's dynamo exporter (torch.export underneath) leaves process-wide state behind:
after it, a backward pass in the same process makes every fork-based child's autograd fail
("Unable to handle autograd's threading in combination with fork-based multiprocessing"),
which breaks training with forked workers and torch.multiprocessing in the same process. The
export is a one-off of seconds, so it runs in ``python -m liploc_ros.model.backends.onnx_process``:
the model goes over as a temporary liploc model file, and the child checks that it rebuilt
the same fingerprint before writing anything.

    python -m liploc_ros.model.backends.onnx_process MODEL FINGERPRINT SIDE=OUT.onnx ...
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from liploc_ros.errors import BackendError, LiplocError
from liploc_ros.model.liploc_file import LoadedModel, save_model

#: how long one export may take before it is given up (a ViT-S pair takes about a minute
#: on two busy cores)
TIMEOUT_S = 1800.0
_TAIL_LINES = 15


def export_onnx_files(loaded: LoadedModel, outputs: Mapping[str, Path]) -> None:
    """Export ``loaded``'s encoders (side -> ONNX path) in a child process."""
    for side in outputs:
        if side not in ("camera", "lidar"):
            raise ValueError(f"side must be 'camera' or 'lidar', not {side!r}")
    with tempfile.TemporaryDirectory(prefix="liploc-onnx-") as tmp:
        model_file = Path(tmp) / "model.safetensors"
        save_model(model_file, loaded.model, loaded.preprocess)
        command = [
            sys.executable, "-m", __name__, str(model_file), loaded.fingerprint,
            *(f"{side}={Path(path).resolve()}" for side, path in outputs.items()),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise BackendError(f"the ONNX export process failed: {err}") from err
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-_TAIL_LINES:])
        raise BackendError(f"the ONNX export failed (exit {done.returncode}):\n{tail}")


def _main(argv: list[str]) -> int:
    from liploc_ros.model import load_model
    from liploc_ros.model.backends.onnx_export import export_onnx

    model_file, fingerprint, *targets = argv
    loaded = load_model(model_file)
    if loaded.fingerprint != fingerprint:
        print(f"model file holds {loaded.fingerprint}, not {fingerprint}", file=sys.stderr)
        return 2
    for target in targets:
        side, _, path = target.partition("=")
        export_onnx(loaded, side, Path(path))  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    try:
        sys.exit(_main(sys.argv[1:]))
    except LiplocError as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
