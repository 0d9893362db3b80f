"""localizer_node: camera frames in, poses in the LiDAR map out (LIP-Loc); a managed node.

- Subscribes each of ``image_topics`` as sensor_msgs/Image or CompressedImage, whichever its
  publisher offers (learned from the ROS graph, retried every ``discovery_period`` until the
  topic appears), best effort, depth 1. Callbacks only store the message in its camera's
  newest-frame slot; one worker thread decodes and localizes the newest frame of the camera
  that has waited longest (:mod:`~liploc_ros.ros.localizer_runtime`). A slow model therefore
  drops frames instead of queueing them, and no camera starves.
- ``mode: sequence`` (default): the frames go through the sequence filter
  (:class:`~liploc_ros.localization.sequence_mode.SequenceMode`, Monte Carlo localization)
  with the odometry at each image's stamp (:mod:`~liploc_ros.ros.odometry_input`: tf
  ``odom_frame -> base_frame`` or ``odom_topic``); a pose is published only while the filter
  tracks, with the filter's covariance. ``mode: single``: every frame alone.
- Publishes, stamped with the image's stamp in ``map_frame``, base_frame's pose
  (:mod:`~liploc_ros.localization.base_pose`) on ``~/pose`` (PoseWithCovarianceStamped) and
  ``~/odom`` (``publish_odom``); ``~/markers``; ``/diagnostics`` every ``diagnostics_period``
  (rate, latency, fix ratio, drops, the map's calibration: WARN without one; in sequence
  mode the filter's state, mode and off-map probabilities). No fix, no pose.
- ``publish_tf``: broadcasts map -> odom from each fix and tf's odom -> base (tf2_ros needed).
- ``publish_initialpose``: the first fix with confidence >= ``initialpose_min_confidence``
  goes to ``initialpose_topic`` (nav2 AMCL). ``initialpose_in``: an operator's pose on
  ``initialpose_in_topic`` seeds the filter. Services beside ours: AMCL's
  ``reinitialize_global_localization``, ``request_nomotion_update`` and ``set_initial_pose``
  (:mod:`~liploc_ros.ros.localizer_requests`).

**Lifecycle** (rclpy ``LifecycleNode``; ``/localizer_node/change_state`` etc.):
``on_configure`` reads the parameters and loads model, map and calibration, one warm-up
frame (a failure: an ERROR line naming it, FAILURE, the node stays unconfigured for a
retry); ``on_activate`` subscribes the cameras and requests, starts the worker and the
timers, enables the publishers; ``on_deactivate`` stops all output (no pose, no marker, no
diagnostics; frames arriving are dropped); ``on_cleanup`` frees model and map;
``on_shutdown`` from any state. ``autostart`` (default true) configures and activates at
start-up, so that the console script behaves as a plain node: a missing, corrupt or
mismatched model or map, or a bad parameter, is then a FATAL log line and exit code 1.
With ``autostart`` false the node waits for a lifecycle manager, and every parameter may be
set while it is unconfigured (see :mod:`~liploc_ros.ros.lifecycle`).

**Parameters** in ``DYNAMIC_PARAMETERS`` (gates, thresholds, rates, publish flags) may
change while the node runs: each change is checked by the config's own validation (refused
with the reason, the old value kept) and takes effect before the next frame.

A bad frame (unsupported encoding, zero size, wrong step, corrupt JPEG) is a warning,
throttled per cause, and the node carries on. An unexpected error on a frame is logged,
counted and reported as ERROR on /diagnostics; should the worker thread ever end while the
node runs, the node says so and exits with code 1, so that a supervisor (launch
``respawn``, systemd) restarts it. Outside ``use_sim_time``, a frame stamped more than
``max_stamp_offset`` from the node's clock is localized but warned about and left out of
the latency figures.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
import traceback
from typing import Any

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions

from liploc_ros.errors import LiplocError
from liploc_ros.ros.lifecycle import Entities, autostart, check_changes, declare_lifecycle_config
from liploc_ros.ros.localizer_params import DYNAMIC_PARAMETERS, LocalizerNodeConfig
from liploc_ros.ros.localizer_runtime import IMAGE_TYPES, LocalizerRuntime
from liploc_ros.ros.params import read_config
from liploc_ros.ros.spin import spin_until_signal

__all__ = ["IMAGE_TYPES", "NODE_NAME", "LocalizerNode", "main"]

NODE_NAME = "localizer_node"
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class LocalizerNode(LifecycleNode):
    """The lifecycle shell; :attr:`runtime` (None while unconfigured) does the work."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.cfg: LocalizerNodeConfig | None = None
        self.runtime: LocalizerRuntime | None = None
        self.configure_error: BaseException | None = None
        self.autostarting = False
        self._entities: Entities | None = None
        start = declare_lifecycle_config(self, LocalizerNodeConfig, DYNAMIC_PARAMETERS)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if start:
            autostart(self)

    # -- transitions ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.configure_error = None
        t0 = time.perf_counter()
        entities = Entities(self)
        try:
            cfg = read_config(self, LocalizerNodeConfig)
            runtime = LocalizerRuntime(self, cfg)
        except Exception as err:  # any failure: the node stays unconfigured, for a retry
            entities.destroy()
            self.configure_error = err
            if not self.autostarting:  # autostart: main() says it, FATAL
                detail = "" if isinstance(err, LiplocError) else f"\n{traceback.format_exc()}"
                self.get_logger().error(f"configure failed: {err}{detail}")
            gc.collect()
            return FAILURE
        self.cfg, self.runtime, self._entities = cfg, runtime, entities
        rt = runtime
        self.get_logger().info(
            f"ready: {len(rt.database)} map entries in '{rt.frame_id}', publishing "
            f"{self.resolve_topic_name('~/pose')} for '{cfg.base_frame}'; cameras: "
            f"{', '.join(rt.topics)}; {cfg.mode} mode"
            + (f", odometry: {rt.tracking.odometry.label}" if rt.tracking else "")
            + f" (configured in {time.perf_counter() - t0:.1f} s)"
        )
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.runtime is not None  # the state machine activates configured nodes only
        try:
            result = super().on_activate(state)  # enables the lifecycle publishers
            self.runtime.activate()
        except Exception:  # rclpy would swallow it: say it (on_error then cleans up)
            self.get_logger().error(f"activate failed:\n{traceback.format_exc()}")
            return TransitionCallbackReturn.ERROR
        self.get_logger().info("active: localizing")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.runtime is not None
        try:
            self.runtime.deactivate()
            result = super().on_deactivate(state)
        except Exception:
            self.get_logger().error(f"deactivate failed:\n{traceback.format_exc()}")
            return TransitionCallbackReturn.ERROR
        self.get_logger().info("inactive: frames are dropped, nothing is published")
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: model and map released")
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS

    def _release(self) -> None:
        """Stop the worker, destroy what the configure made, drop model and map."""
        runtime, entities = self.runtime, self._entities
        self.runtime = self.cfg = self._entities = None
        if runtime is not None:
            runtime.close()
        if entities is not None:
            entities.destroy()
        del runtime
        gc.collect()

    # -- parameters -------------------------------------------------------------------------
    def _on_set_parameters(self, params: list) -> SetParametersResult:
        result, new = check_changes(LocalizerNodeConfig, self.cfg, params, DYNAMIC_PARAMETERS)
        if new is None or self.runtime is None:
            return result
        try:
            self.runtime.reconfigure(new)
        except Exception as err:  # a bug: refuse the change rather than half apply it
            self.get_logger().error(f"parameter change failed:\n{traceback.format_exc()}")
            return SetParametersResult(successful=False, reason=f"not applied: {err}")
        self.cfg = new
        changed = ", ".join(f"{p.name} {p.value}" for p in params)
        self.get_logger().info(f"parameters changed: {changed}")
        return result

    # -- running ----------------------------------------------------------------------------
    def worker_died(self) -> bool:
        """True once a started worker thread has ended while the node runs."""
        return self.runtime is not None and self.runtime.worker_died()

    def run(self) -> int:
        """Spin until SIGINT / SIGTERM, then shut down; 1 if the worker died first."""
        try:
            # callbacks only fill the frame slots: the worker thread does the work
            spin_until_signal(self, threads=1, stop_when=self.worker_died)
        finally:
            died = self.worker_died()
            self.close()
        if died:
            self.get_logger().fatal(
                "the localizer worker thread ended: no frame would be localized any more; "
                "exiting with code 1 so that a supervisor (launch respawn, systemd) restarts "
                "the node"
            )
            return 1
        return 0

    def close(self) -> None:
        """The shutdown transition (from any state); releases everything."""
        with contextlib.suppress(Exception):  # finalized, or in a transition: by hand then
            self.trigger_shutdown()
        self._release()


def main(args: list[str] | None = None) -> int:
    """Console script ``localizer_node``; the exit code (0, 1 error, 2 bad arguments)."""
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as err:  # rcl's own error type: bad --ros-args
        print(f"{NODE_NAME}: cannot start: {err}", file=sys.stderr)
        return 2
    node = None
    try:
        node = LocalizerNode()
        return node.run()
    except LiplocError as err:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(err))
        return 1
    except KeyboardInterrupt:  # Ctrl-C while loading
        return 130
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
