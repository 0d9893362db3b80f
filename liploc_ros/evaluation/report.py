"""The figures of a run as the commands print them: one formatter, so that ``liploc
localize``, ``liploc eval`` and the demo show a figure the same way wherever it appears."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["fmt", "run_lines", "track_line"]


def fmt(value: Any, spec: str = ".3f") -> str:
    """``value`` formatted, or n/a for a figure that is undefined (None)."""
    return "n/a" if value is None else format(value, spec)


def track_line(fig: Mapping[str, Any]) -> str:
    """The published poses of a run against ground truth (track_summary's keys)."""
    line = (
        f"{fig['mode']} mode: fix ratio {fmt(fig.get('fix_ratio'))}, precision "
        f"{fmt(fig.get('fix_precision_20m'))} (20 m) {fmt(fig.get('fix_precision_5m'))} (5 m), "
        f"median error {fmt(fig.get('median_error_m'), '.2f')} m, p95 "
        f"{fmt(fig.get('p95_error_m'), '.1f')} m, median yaw error "
        f"{fmt(fig.get('median_yaw_error_deg'), '.1f')} deg, first fix after "
        f"{fmt(fig.get('first_fix_distance_m'), '.1f')} m"
    )
    if "fix_ratio_at_precision_99" in fig:
        line += f"; fix ratio at 99% precision {fmt(fig['fix_ratio_at_precision_99'])}"
    if fig.get("odometry"):
        line += f" (odometry: {fig['odometry']})"
    return line


def run_lines(summary: Mapping[str, Any]) -> list[str]:
    """``liploc localize``'s report of a summary.json."""
    reasons = summary.get("no_fix_reasons") or {}
    lines = [
        f"frames          {summary['frames']} ({fmt(summary['frames_per_second'], '.1f')} "
        "frames/s)",
        f"fixes           {summary['fixes']} ({fmt(summary['fix_rate'], '.1%')})"
        + (" no fix: " + ", ".join(f"{k} {v}" for k, v in reasons.items()) if reasons else ""),
    ]
    if summary.get("recall"):
        recall = ", ".join(f"R{k} {fmt(v)}" for k, v in summary["recall"].items())
        lines += [
            f"recall          {recall} (within {summary['threshold_m']:g} m, ground plane)",
            f"median error    {fmt(summary['median_error_m'], '.2f')} m over fixes, "
            f"fix precision {fmt(summary['fix_precision'])}",
        ]
    if summary.get("fix_precision_20m") is not None or summary.get("odometry"):
        lines.append(f"track           {track_line(summary)}")
    total = summary["latency_ms"]["total"]
    single = summary["single_frame_latency_ms"].get("total", {})
    lines.append(
        f"latency         {fmt(total['p50'], '.1f')} ms p50, {fmt(total['p99'], '.1f')} ms p99"
        f" per frame (batched); one frame at a time: {fmt(single.get('p50'), '.1f')} ms p50, "
        f"{fmt(single.get('p99'), '.1f')} ms p99"
    )
    return lines
