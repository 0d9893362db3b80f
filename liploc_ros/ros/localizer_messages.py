"""The localizer node's outgoing messages, built from numpy: poses, markers, diagnostics.

Kept apart from the node so that it stays a thin shell and so that each message can be
checked in a test without a running graph.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import (
    Point,
    PoseWithCovariance,
    PoseWithCovarianceStamped,
    TransformStamped,
    Twist,
    TwistWithCovariance,
    Vector3,
)
from nav_msgs.msg import Odometry
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from liploc_ros.ros.conversions import matrix_to_pose, matrix_to_transform
from liploc_ros.ros.frame_slots import SlotCounts
from liploc_ros.ros.localizer_stats import StatsWindow

__all__ = [
    "MATCH_NS",
    "PARTICLES_NS",
    "ROUTE_NS",
    "UNKNOWN_TWIST_VARIANCE",
    "diagnostics_message",
    "match_markers",
    "odometry_message",
    "particle_markers",
    "pose_message",
    "route_markers",
    "transform_message",
]

#: variance on the diagonal of ~/odom's twist covariance: the localizer measures no velocity
UNKNOWN_TWIST_VARIANCE = 1e6

ROUTE_NS = "liploc_map_route"
MATCH_NS = "liploc_match"
PARTICLES_NS = "liploc_particles"
_GREEN = ColorRGBA(r=0.17, g=0.63, b=0.17, a=1.0)
_RED = ColorRGBA(r=0.84, g=0.15, b=0.16, a=1.0)
_GREY = ColorRGBA(r=0.6, g=0.6, b=0.6, a=0.8)
_BLUE = ColorRGBA(r=0.12, g=0.47, b=0.71, a=0.6)
_ORANGE = ColorRGBA(r=1.0, g=0.5, b=0.05, a=0.8)


def pose_message(
    T: np.ndarray, covariance: np.ndarray, stamp: Time, frame_id: str
) -> PoseWithCovarianceStamped:
    """A 4 x 4 pose and its 6 x 6 covariance (x y z roll pitch yaw) as the message
    robot_localization's poseN and nav2's /initialpose take."""
    msg = PoseWithCovarianceStamped(header=Header(stamp=stamp, frame_id=frame_id))
    msg.pose = PoseWithCovariance(
        pose=matrix_to_pose(T), covariance=np.asarray(covariance, np.float64).reshape(36)
    )
    return msg


def odometry_message(
    T: np.ndarray, covariance: np.ndarray, stamp: Time, frame_id: str, child_frame_id: str
) -> Odometry:
    """The pose as nav_msgs/Odometry; the twist is zero with a huge variance (unknown)."""
    twist_cov = np.zeros((6, 6))
    np.fill_diagonal(twist_cov, UNKNOWN_TWIST_VARIANCE)
    return Odometry(
        header=Header(stamp=stamp, frame_id=frame_id),
        child_frame_id=child_frame_id,
        pose=pose_message(T, covariance, stamp, frame_id).pose,
        twist=TwistWithCovariance(twist=Twist(), covariance=twist_cov.reshape(36)),
    )


def transform_message(T: np.ndarray, stamp: Time, parent: str, child: str) -> TransformStamped:
    return TransformStamped(
        header=Header(stamp=stamp, frame_id=parent),
        child_frame_id=child,
        transform=matrix_to_transform(T),
    )


def _points(xyz: np.ndarray) -> list[Point]:
    return [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in np.asarray(xyz)]


def route_markers(
    positions: np.ndarray,
    source_index: np.ndarray,
    frame_id: str,
    *,
    width: float = 0.5,
    max_points: int = 20_000,
) -> MarkerArray:
    """The map's route: one LINE_STRIP per source drive (a merged map's drives are not
    joined), in map order; a drive longer than ``max_points`` entries is drawn through every
    n-th one (and its last), which RViz draws as well and sends much faster."""
    out = MarkerArray()
    positions = np.asarray(positions, np.float64).reshape(-1, 3)
    sources = np.asarray(source_index).reshape(-1)
    for source in np.unique(sources):
        xyz = positions[sources == source]
        if len(xyz) > max_points:
            step = -(-len(xyz) // max_points)
            xyz = np.concatenate([xyz[::step], xyz[-1:]])
        marker = Marker(
            header=Header(frame_id=frame_id),
            ns=ROUTE_NS,
            id=int(source),
            type=Marker.LINE_STRIP if len(xyz) > 1 else Marker.SPHERE_LIST,
            action=Marker.ADD,
            scale=Vector3(x=width, y=width, z=width),
            color=_GREY,
            points=_points(xyz),
        )
        marker.pose.orientation.w = 1.0
        out.markers.append(marker)
    return out


def match_markers(
    T: np.ndarray,
    matches: np.ndarray,
    ok: bool,
    stamp: Time,
    frame_id: str,
    *,
    lifetime_s: float = 0.0,
) -> MarkerArray:
    """The current match: an ARROW at ``T`` (green fix, red no fix) and lines from it to
    each of the top-k entries' positions ``matches`` (k x 3), drawn as spheres."""
    header = Header(stamp=stamp, frame_id=frame_id)
    life = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1.0) * 1e9))
    color = _GREEN if ok else _RED
    arrow = Marker(
        header=header,
        ns=MATCH_NS,
        id=0,
        type=Marker.ARROW,
        action=Marker.ADD,
        pose=matrix_to_pose(T),
        scale=Vector3(x=4.0, y=1.0, z=1.0),
        color=color,
        lifetime=life,
    )
    xyz = np.asarray(matches, np.float64).reshape(-1, 3)
    xyz = xyz[np.isfinite(xyz).all(axis=1)]
    origin = Point(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3]))
    lines = Marker(
        header=header,
        ns=MATCH_NS,
        id=1,
        type=Marker.LINE_LIST,
        action=Marker.ADD,
        scale=Vector3(x=0.2),
        color=_BLUE,
        points=[p for target in _points(xyz) for p in (origin, target)],
        lifetime=life,
    )
    spheres = Marker(
        header=header,
        ns=MATCH_NS,
        id=2,
        type=Marker.SPHERE_LIST,
        action=Marker.ADD,
        scale=Vector3(x=1.5, y=1.5, z=1.5),
        color=_BLUE,
        points=_points(xyz),
        lifetime=life,
    )
    for marker in (lines, spheres):
        marker.pose.orientation.w = 1.0
    return MarkerArray(markers=[arrow, lines, spheres])


def particle_markers(
    xy: np.ndarray,
    z: float,
    stamp: Time,
    frame_id: str,
    *,
    size: float = 0.4,
    max_points: int = 2000,
) -> MarkerArray:
    """The sequence filter's particles (N x 2 ground positions at height ``z``) as one
    POINTS marker; more than ``max_points`` are drawn through every n-th (a sample of an
    equally weighted set is the same posterior)."""
    pts = np.asarray(xy, np.float64).reshape(-1, 2)
    if len(pts) > max_points:
        pts = pts[:: -(-len(pts) // max_points)]
    xyz = np.column_stack([pts, np.full(len(pts), float(z))])
    marker = Marker(
        header=Header(stamp=stamp, frame_id=frame_id),
        ns=PARTICLES_NS,
        id=0,
        type=Marker.POINTS,
        action=Marker.ADD,
        scale=Vector3(x=size, y=size),
        color=_ORANGE,
        points=_points(xyz),
    )
    marker.pose.orientation.w = 1.0
    return MarkerArray(markers=[marker])


def _fmt(value: float, fmt: str = ".3f") -> str:
    return "nan" if value is None or not math.isfinite(value) else format(value, fmt)


def diagnostics_message(
    name: str,
    hardware_id: str,
    stamp: Time,
    window: StatsWindow,
    cameras: Mapping[str, SlotCounts],
    warnings: Mapping[str, int],
    *,
    waiting_for: tuple[str, ...] = (),
    tracking: Mapping[str, str] | None = None,
    calibration: str = "",
    calibration_warning: str = "",
    inference: Mapping[str, str] | None = None,
) -> DiagnosticArray:
    """One DiagnosticStatus: OK while frames are localized, WARN without frames or fixes or
    on a map not calibrated for the model (``calibration_warning``: conservative settings),
    ERROR when the worker failed unexpectedly in the period. ``tracking``: sequence mode's
    values (``state`` first: the message says it); ``calibration``: what the map's score
    calibration is; ``inference``: the camera encoder's runtime and, with backend auto, its
    choice and measured latency (``Embedder.diagnostics()``)."""
    state = f" ({tracking['state']})" if tracking and "state" in tracking else ""
    if window.errors:
        level = DiagnosticStatus.ERROR
        message = (
            f"{window.errors} internal error(s) in the last {window.period_s:.1f} s (see the "
            "log); the worker goes on"
        )
    elif window.frames == 0:
        level = DiagnosticStatus.WARN
        waiting = f" (no publisher yet on {', '.join(waiting_for)})" if waiting_for else ""
        message = f"no camera frames in the last {window.period_s:.1f} s{waiting}"
    elif window.fixes == 0:
        level, message = DiagnosticStatus.WARN, f"{window.frames} frames, no fix{state}"
    else:
        level = DiagnosticStatus.OK
        message = f"{window.rate_hz:.1f} Hz, {window.fix_ratio:.0%} fixes{state}"
    if calibration_warning:
        level = max(level, DiagnosticStatus.WARN)
        message += "; map not calibrated for this model: conservative settings"
    dropped = sum(c.dropped for c in cameras.values())
    values = {
        "rate_hz": _fmt(window.rate_hz, ".2f"),
        "frames": str(window.frames),
        "fix_ratio": _fmt(window.fix_ratio),
        "latency_p50_ms": _fmt(window.latency_p50_ms, ".1f"),
        "latency_max_ms": _fmt(window.latency_max_ms, ".1f"),
        "processing_mean_ms": _fmt(window.processing_mean_ms, ".1f"),
        "processing_max_ms": _fmt(window.processing_max_ms, ".1f"),
        "processing_p99_ms": _fmt(window.processing_p99_ms, ".1f"),
        "score_mean": _fmt(window.score_mean, ".4f"),
        "confidence_mean": _fmt(window.confidence_mean),
        "total_frames": str(window.total_frames),
        "total_fixes": str(window.total_fixes),
        "total_dropped": str(dropped),
        "total_bad_input": str(window.total_bad),
        "total_internal_errors": str(window.total_errors),
        "calibration": calibration_warning or calibration or "n/a",
        **(tracking or {}),
        **(inference or {}),
    }
    for camera, counts in cameras.items():
        values[f"{camera}: received"] = str(counts.received)
        values[f"{camera}: processed"] = str(counts.taken)
        values[f"{camera}: dropped"] = str(counts.dropped)
    for cause, count in warnings.items():
        values[f"warnings: {cause}"] = str(count)
    status = DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])
