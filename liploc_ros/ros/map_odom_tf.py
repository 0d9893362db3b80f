"""map -> odom from a global fix, the way AMCL publishes it, where tf2_ros is installed.

A global localizer knows ``T_map_base``; odometry owns ``odom -> base``. The transform that
makes both true at the fix's stamp is ``T_map_odom = T_map_base @ inv(T_odom_base)``. It is
post-dated by ``tolerance`` seconds (AMCL's transform_tolerance), so that tf lookups a little
newer than the last fix do not fail between fixes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from liploc_ros.geometry import invert_transform
from liploc_ros.ros import conversions as conv
from liploc_ros.ros.localizer_messages import transform_message
from liploc_ros.ros.tf_listener import SharedTf

__all__ = ["MapToOdom"]

#: how long a lookup of odom -> base may wait for tf to catch up with the image's stamp
LOOKUP_TIMEOUT_S = 0.05


class MapToOdom:
    """Broadcasts ``map_frame -> odom_frame`` for each fix; see the module docstring."""

    def __init__(
        self,
        tf2_ros: Any,
        node: Any,
        frames: tuple[str, str, str],
        tolerance: float,
        warn: Callable[[str, str], Any],
        buffer: Any,
    ) -> None:
        self.tf2_ros = tf2_ros
        self.map_frame, self.odom_frame, self.base_frame = frames
        self.tolerance = float(tolerance)
        self.warn = warn
        self.buffer = buffer
        self.broadcaster = tf2_ros.TransformBroadcaster(node)

    @classmethod
    def create(
        cls,
        node: Any,
        frames: tuple[str, str, str],
        tolerance: float,
        warn: Callable[[str, str], Any],
        tf: SharedTf | None = None,
    ) -> MapToOdom | None:
        """None where tf2_ros is not installed (a pip-only install); the odom -> base lookups
        read ``tf``, the node's shared tf buffer (one of its own if None)."""
        try:
            import tf2_ros

            buffer = (tf or SharedTf(node)).buffer()
        except ImportError:
            return None
        return cls(tf2_ros, node, frames, tolerance, warn, buffer)

    def broadcast(self, T_map_base: np.ndarray, stamp: Any) -> bool:
        """Send map -> odom for a fix of base at ``stamp`` (builtin_interfaces/Time); False
        (with a throttled warning) when tf has no odom -> base there."""
        from rclpy.duration import Duration
        from rclpy.time import Time

        try:
            odom_base = self.buffer.lookup_transform(
                self.odom_frame,
                self.base_frame,
                Time.from_msg(stamp),
                timeout=Duration(seconds=LOOKUP_TIMEOUT_S),
            )
        except self.tf2_ros.TransformException as err:
            self.warn(
                "no odom tf",
                f"no {self.map_frame} -> {self.odom_frame} broadcast: {self.odom_frame} -> "
                f"{self.base_frame} unavailable at {conv.stamp_to_seconds(stamp):.3f} s: {err}",
            )
            return False
        T_odom_base = conv.transform_to_matrix(odom_base.transform)
        T_map_odom = np.asarray(T_map_base) @ invert_transform(T_odom_base)
        post_dated = conv.seconds_to_stamp(conv.stamp_to_seconds(stamp) + self.tolerance)
        self.broadcaster.sendTransform(
            transform_message(T_map_odom, post_dated, self.map_frame, self.odom_frame)
        )
        return True
