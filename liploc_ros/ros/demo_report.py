"""The demo's ground truth, read from the played bag (rosbags; no rclpy).

The figures computed against it are :mod:`liploc_ros.evaluation.demo_figures`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from liploc_ros.errors import DatasetError
from liploc_ros.evaluation.demo_figures import stamp_key

__all__ = ["read_ground_truth"]


def read_ground_truth(bag: str | Path, topic: str = "/ground_truth/odom") -> dict[int, np.ndarray]:
    """stamp_key(header stamp) -> position (3,) of the bag's Odometry / pose messages."""
    from rosbags.highlevel import AnyReader

    path = Path(bag)
    out: dict[int, np.ndarray] = {}
    try:
        with AnyReader([path]) as reader:
            conns = [c for c in reader.connections if c.topic == topic]
            if not conns:
                raise DatasetError(f"bag {path} has no {topic} topic for the ground truth")
            for conn, _, raw in reader.messages(connections=conns):
                msg: Any = reader.deserialize(raw, conn.msgtype)
                pose = msg.pose.pose if hasattr(msg.pose, "pose") else msg.pose
                t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                p = pose.position
                out[stamp_key(t)] = np.array([p.x, p.y, p.z], np.float64)
    except DatasetError:
        raise
    except Exception as err:
        raise DatasetError(f"cannot read ground truth from {path}: {err}") from err
    return out
