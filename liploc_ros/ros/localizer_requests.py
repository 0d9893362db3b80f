"""What localizer_node is asked from outside: its services, ~/relocalize as a topic, and the
operator's initial pose.

Services, made when the node configures (as AMCL makes its own), answered in any state; a
request that changes the filter only sets a flag the worker consumes before its next frame:

- ``~/publish_initialpose`` (std_srvs/Trigger): the latest confident fix again on
  ``initialpose_topic``.
- sequence mode: ``~/relocalize`` (Trigger) and AMCL's ``reinitialize_global_localization``
  (std_srvs/Empty): global localization from scratch; AMCL's ``request_nomotion_update``
  (Empty): the next frame's measurement is weighed as a full step even without motion;
  AMCL's ``set_initial_pose`` (nav2_msgs/SetInitialPose, where nav2_msgs is installed): as
  a message on ``initialpose_in_topic``. AMCL's names are relative (the node's namespace, not
  ``~/``), as AMCL has them, so that nav2's behaviour trees and tools find them.

Topics, subscribed while the node is active: ``~/relocalize`` (std_msgs/Empty) and, with
``initialpose_in``, ``initialpose_in_topic`` (PoseWithCovarianceStamped; reliable,
volatile, depth 10: nav2's QoS for AMCL's ``initialpose``, which RViz's "2D Pose Estimate"
and a latched publisher both match). An initial pose seeds sequence mode's particles
(:mod:`~liploc_ros.ros.initialpose_input`); single mode has no filter to seed: it says so
once and ignores them. The node's own ``/initialpose`` output is never taken as input.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Empty as EmptyMsg

from liploc_ros.errors import LiplocError
from liploc_ros.ros.initialpose_input import initial_pose

try:  # a minimal ROS install may lack std_srvs: no services (the ~/relocalize topic stays)
    from std_srvs.srv import Empty, Trigger
except ImportError:
    Empty = Trigger = None
try:  # nav2_msgs: on a nav2 install only
    SetInitialPose: Any = importlib.import_module("nav2_msgs.srv").SetInitialPose
except ImportError:
    SetInitialPose = None

__all__ = ["INITIALPOSE_QOS", "LocalizerRequests"]

#: nav2's StandardTopicQoS, what AMCL subscribes ``initialpose`` with
INITIALPOSE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


class LocalizerRequests:
    """The services of ``runtime`` (a :class:`~liploc_ros.ros.localizer_runtime
    .LocalizerRuntime`) on ``node``, and its request topics while active."""

    def __init__(self, node: Any, runtime: Any) -> None:
        self.node, self.runtime = node, runtime
        self._log = node.get_logger()
        self._subscriptions: list[Any] = []
        self._initialpose_sub: Any = None
        self._single_mode_said = False
        sequence = runtime.tracking is not None
        if Trigger is not None:
            node.create_service(Trigger, "~/publish_initialpose", self._on_publish_initialpose)
        if sequence and Trigger is not None:
            node.create_service(Trigger, "~/relocalize", self._on_relocalize_trigger)
            node.create_service(Empty, "reinitialize_global_localization", self._on_reinitialize)
            node.create_service(Empty, "request_nomotion_update", self._on_nomotion)
        if sequence and SetInitialPose is not None:
            node.create_service(SetInitialPose, "set_initial_pose", self._on_set_initial_pose)
        elif sequence:
            self._log.debug("nav2_msgs is not installed: no set_initial_pose service")

    # -- topics (while active) ------------------------------------------------------------
    def subscribe(self) -> None:
        if self.runtime.tracking is not None:
            self._subscriptions.append(
                self.node.create_subscription(
                    EmptyMsg, "~/relocalize", self._on_relocalize_message, 10
                )
            )
        self.listen_initialpose(self.runtime.cfg.initialpose_in)

    def unsubscribe(self) -> None:
        for sub in self._subscriptions:
            self.node.destroy_subscription(sub)
        self._subscriptions.clear()
        self.listen_initialpose(False)

    def listen_initialpose(self, on: bool) -> None:
        """Subscribe ``initialpose_in_topic`` (on) or not (off); executor thread only."""
        if on and self._initialpose_sub is None:
            self._initialpose_sub = self.node.create_subscription(
                PoseWithCovarianceStamped,
                self.runtime.cfg.initialpose_in_topic,
                self._on_initialpose_message,
                INITIALPOSE_QOS,
            )
        elif not on and self._initialpose_sub is not None:
            self.node.destroy_subscription(self._initialpose_sub)
            self._initialpose_sub = None

    # -- initial pose in -------------------------------------------------------------------
    def _on_initialpose_message(self, msg: PoseWithCovarianceStamped) -> None:
        if msg in self.runtime.sent_poses:
            return  # our own /initialpose output, back on the same topic
        self.take_initial_pose(msg, f"topic {self._initialpose_sub.topic_name}")

    def _on_set_initial_pose(self, request: Any, response: Any) -> Any:
        self.take_initial_pose(request.pose, "service set_initial_pose")
        return response

    def take_initial_pose(self, msg: PoseWithCovarianceStamped, via: str) -> bool:
        """Seed the filter from ``msg`` (True), or say why not (a warning, False)."""
        runtime = self.runtime
        if runtime.tracking is None:
            if not self._single_mode_said:
                self._single_mode_said = True
                self._log.info(
                    f"initial pose from {via} ignored: single mode localizes every frame "
                    "alone, there is no filter to seed (said once)"
                )
            return False
        try:
            T, cov = initial_pose(msg, runtime.frame_id, runtime.tf_buffer)
            runtime.tracking.request_seed(T, cov, runtime.T_base_lidar)
        except LiplocError as err:  # InitialPoseError, or the filter's ConfigError
            runtime.throttle.warn("bad initial pose", f"initial pose from {via} refused: {err}")
            return False
        yaw = math.degrees(math.atan2(T[1, 0], T[0, 0]))
        self._log.info(
            f"initial pose from {via}: x {T[0, 3]:.2f} y {T[1, 3]:.2f} yaw {yaw:.1f} deg in "
            f"'{runtime.frame_id}' (std x {math.sqrt(cov[0, 0]):.2f} m, y "
            f"{math.sqrt(cov[1, 1]):.2f} m, yaw {math.degrees(math.sqrt(cov[5, 5])):.1f} deg): "
            "the filter re-initializes around it"
        )
        return True

    # -- services ---------------------------------------------------------------------------
    def _on_publish_initialpose(self, request: Any, response: Any) -> Any:
        response.success, response.message = self.runtime.send_initialpose_again()
        return response

    def _on_relocalize_trigger(self, request: Any, response: Any) -> Any:
        self.relocalize("service ~/relocalize")
        response.success = True
        response.message = "global localization restarts: the filter re-initializes now"
        return response

    def _on_relocalize_message(self, msg: EmptyMsg) -> None:
        self.relocalize("topic ~/relocalize")

    def _on_reinitialize(self, request: Any, response: Any) -> Any:
        self.relocalize("service reinitialize_global_localization")
        return response

    def relocalize(self, via: str) -> None:
        """Any thread: only a flag, which the worker consumes (it owns the filter)."""
        self.runtime.tracking.request_reset()
        self._log.info(f"re-localization requested ({via})")

    def _on_nomotion(self, request: Any, response: Any) -> Any:
        self.runtime.tracking.request_nomotion_update()
        self._log.info("no-motion update requested: the next frame is weighed as a full step")
        return response
