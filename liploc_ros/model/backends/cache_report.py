"""What the backends' cache holds for a model, for ``liploc model-info``: the choices ``auto``
measured (and on which machine), the INT8 models with their calibration and verification,
and the float precisions auto verified. Read from the cache files alone: nothing is loaded
or measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from liploc_ros.model.backends.acceptance import VERIFICATION_FILE
from liploc_ros.model.backends.auto_store import AUTO_FOLDER, list_decisions
from liploc_ros.model.backends.cache import cache_root_for, read_manifest
from liploc_ros.model.backends.machine import machine_profile


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _this_machine(name: str, root: Path) -> bool:
    data = _json(root / AUTO_FOLDER / name) or {}
    machine = data.get("key", {}).get("machine", {})
    here = json.loads(json.dumps(machine_profile().to_dict()))
    return isinstance(machine, dict) and {k: v for k, v in machine.items() if k != "gpu"} == {
        k: v for k, v in here.items() if k != "gpu"
    }


def cache_report(path: Path | None, fingerprint: str) -> dict[str, Any]:
    """The cache's contents for the model file at ``path`` (see the module's docstring)."""
    root = cache_root_for(path, fingerprint)
    decisions = [
        {**decision, "file": name, "this_machine": _this_machine(name, root)}
        for name, decision in list_decisions(root)
    ]
    int8 = []
    for folder in sorted(root.glob("*-int8-*/*")) if root.is_dir() else []:
        manifest = read_manifest(folder)
        verification = _json(folder / VERIFICATION_FILE)
        if manifest is None or verification is None:
            continue
        key = manifest.get("key", {})
        int8.append({"folder": str(folder.relative_to(root)), "backend": key.get("backend"),
                     "side": key.get("side"), "calibration": key.get("calibration"),
                     "verification": verification})  # fmt: skip
    verified = []
    for file in sorted((root / AUTO_FOLDER / "verified").glob("*.json")):
        data = _json(file)
        if data is not None and isinstance(data.get("verification"), dict):
            verified.append(data["verification"])
    return {"folder": str(root), "auto": decisions, "int8": int8, "verified": verified}


def report_lines(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) lines of a :func:`cache_report` for the model-info table."""
    lines = []
    for d in report["auto"]:
        where = "this machine" if d["this_machine"] else "another machine or setup"
        ms = d.get("ms_per_frame")
        figure = f"{ms:.2f} ms/frame at batch {d['batch']}" if ms is not None else "not timed"
        others = ", ".join(
            f"{k} {v:.1f}" for k, v in (d.get("measured") or {}).items() if v is not None
        )
        lines.append(("auto choice", f"{d['side']} encoder ({d['file']}, {where}): "
                      f"{d['backend']} {d['precision']}, {figure}; candidates ms/frame: "
                      f"{others}; measured {d.get('decided_at', '?')}"))  # fmt: skip
    for e in report["int8"]:
        v, calibration = e["verification"], e.get("calibration") or {}
        verdict = "accepted" if v.get("passed") else "REFUSED"
        lines.append(("int8 model", f"{e['backend']} {e['side']} encoder, calibrated on "
                      f"{calibration.get('source')} ({calibration.get('id')}): {verdict}, "
                      f"cosine to fp32 {v.get('cosine_mean', 0):.5f}, Recall@1 "
                      f"{v.get('recall', 0):.3f} vs fp32 {v.get('recall_fp32', 0):.3f} on "
                      f"{v.get('frames')} held-out frames"))  # fmt: skip
    for v in report["verified"]:
        verdict = "accepted" if v.get("passed") else "REFUSED"
        lines.append(("verified", f"{v['backend']} {v['precision']} {v['side']} encoder: "
                      f"{verdict}, cosine {v['cosine_mean']:.5f}, Recall@1 {v['recall']:.3f} "
                      f"vs fp32 {v['recall_fp32']:.3f} ({v['frames']} frames of "
                      f"{v['source']})"))  # fmt: skip
    if not lines:
        lines.append(("inference cache", f"empty ({report['folder']})"))
    return lines
