"""What both managed nodes (localizer_node, map_builder_node) share as rclpy LifecycleNodes.

- **Parameters.** ``autostart`` is declared first and decides how the rest are declared:
  with ``autostart`` true (a plain node: it configures and activates itself at start-up)
  the configure-time parameters are read-only, as ``ros2 param describe`` then says; with
  ``autostart`` false (a lifecycle manager drives it) every parameter is declared writable,
  so that ``model`` or ``map_path`` can be set while the node is unconfigured, and the
  node's set-parameters callback (:func:`check_changes`) refuses the configure-time ones
  once it is configured (inactive or active). Dynamic ones are validated whole by the
  config's own checks (:func:`~liploc_ros.ros.params.updated_config`) in every state.
- **Entities.** What a configure creates (publishers, subscriptions, services, timers, tf
  listeners) is whatever the node holds beyond what it held before: :class:`Entities`
  destroys exactly those on cleanup, so that a configure after a cleanup starts clean.
- **Autostart.** :func:`autostart` runs configure and activate through the lifecycle state
  machine; a failed configure raises its error again, so that the console script says
  FATAL and exits 1 as a plain node did.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.lifecycle.publisher import LifecyclePublisher

from liploc_ros.errors import LiplocError
from liploc_ros.ros.params import ParameterError, declare_config, parameter_names, updated_config

__all__ = ["Entities", "autostart", "check_changes", "declare_lifecycle_config"]

AUTOSTART = "autostart"


def declare_lifecycle_config(node: LifecycleNode, cls: type, dynamic: Collection[str]) -> bool:
    """Declare ``cls``'s parameters (see the module docstring); returns ``autostart``."""
    names = parameter_names(cls)
    declare_config(node, cls, exclude=[n for n in names if n != AUTOSTART])
    value = node.get_parameter(AUTOSTART).value
    if not isinstance(value, bool):
        raise ParameterError(f"parameter '{AUTOSTART}': expected true or false, got {value!r}")
    writable = dynamic if value else names
    declare_config(node, cls, exclude=[AUTOSTART], dynamic=writable)
    return value


def check_changes(
    cls: type, current: Any, params: list, dynamic: Collection[str]
) -> tuple[SetParametersResult, Any]:
    """A set-parameters callback's verdict on ``params`` and the config they make.

    ``current`` None (unconfigured): any parameter of ``cls`` may change (the whole config
    is read and checked when the node configures); the config returned is None. Configured:
    only ``dynamic`` ones, and the result must pass the config's validation. Parameters that
    are not ``cls``'s (``use_sim_time``) are left to rclpy.
    """
    names = set(parameter_names(cls))
    changes = {p.name: p.value for p in params if p.name in names}
    if AUTOSTART in changes:
        refused = SetParametersResult(successful=False, reason=f"{AUTOSTART} is read at start-up")
        return refused, None
    if current is None or not changes:
        return SetParametersResult(successful=True), None
    try:
        new = updated_config(cls, current, changes, dynamic)
    except ParameterError as err:
        text = str(err)
        if "read-only while the node runs" in text:
            text += " (configure-time: set it while the node is unconfigured, then configure)"
        return SetParametersResult(successful=False, reason=text), None
    return SetParametersResult(successful=True), new


class Entities:
    """The publishers, subscriptions, services, clients and timers a node made since this
    was created; :meth:`destroy` destroys them (lifecycle publishers included)."""

    def __init__(self, node: LifecycleNode) -> None:
        self._node = node
        self._before = {id(e) for e in self._all()}

    def _all(self) -> list:
        n = self._node
        return [*n.publishers, *n.subscriptions, *n.services, *n.clients, *n.timers]

    def destroy(self) -> None:
        n = self._node
        for pub in [p for p in n.publishers if id(p) not in self._before]:
            if isinstance(pub, LifecyclePublisher):  # a managed entity too
                n.destroy_lifecycle_publisher(pub)
            else:
                n.destroy_publisher(pub)
        for sub in [s for s in n.subscriptions if id(s) not in self._before]:
            n.destroy_subscription(sub)
        for srv in [s for s in n.services if id(s) not in self._before]:
            n.destroy_service(srv)
        for client in [c for c in n.clients if id(c) not in self._before]:
            n.destroy_client(client)
        for timer in [t for t in n.timers if id(t) not in self._before]:
            n.destroy_timer(timer)


def autostart(node: Any) -> None:
    """Configure, then activate ``node`` (an rclpy LifecycleNode whose ``on_configure``
    keeps its failure in ``node.configure_error``); the failure is raised again."""
    node.autostarting = True
    try:
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            error = node.configure_error
            raise error if error is not None else LiplocError("configure failed")
        if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            raise LiplocError("activate failed (see the log above)")
    finally:
        node.autostarting = False
