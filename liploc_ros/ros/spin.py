"""Spinning a node until SIGINT / SIGTERM, with ROS still up for what comes after.

rclpy's own signal handlers shut the context down on the first Ctrl-C, so a node that saves or
publishes a last message at shutdown would do it with a dead context ("publisher's context is
invalid"). :func:`spin_until_signal` is used with ``rclpy.init(...,
signal_handler_options=SignalHandlerOptions.NO)`` instead: SIGINT and SIGTERM (what
``ros2 launch`` sends on Ctrl-C, then on timeout) only end the spin loop; the caller then
finishes its work and shuts rclpy down itself.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import (
    Executor,
    ExternalShutdownException,
    MultiThreadedExecutor,
    SingleThreadedExecutor,
)
from rclpy.node import Node

__all__ = ["spin_until_signal"]

#: how often the loop looks at the stop flag (a Python signal handler only runs between
#: bytecodes, never inside rcl's wait)
_POLL_S = 0.1


def spin_until_signal(
    node: Node, *, threads: int = 4, stop_when: Callable[[], bool] | None = None
) -> None:
    """Spin ``node`` until SIGINT, SIGTERM, rclpy shutdown or ``stop_when()`` (e.g. the
    node's worker thread died); ``threads=1``: in a single-threaded executor.

    Nodes whose callbacks only hand work to a thread of their own should use one thread:
    rclpy's MultiThreadedExecutor keeps waking on an entity whose callback is still queued
    in its pool, a Python loop that holds the GIL and starves that worker thread (measured
    on the localizer node with a small model: 262 ms per frame instead of about 10 ms).

    The previous signal handlers are restored on return. From a thread other than the main
    thread (where Python cannot install handlers) it spins until rclpy shuts down.
    """
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    executor: Executor
    if threads == 1:
        executor = SingleThreadedExecutor(context=node.context)
    else:
        executor = MultiThreadedExecutor(num_threads=threads, context=node.context)
    executor.add_node(node)
    try:
        while rclpy.ok(context=node.context) and not stop.is_set():
            executor.spin_once(timeout_sec=_POLL_S)
            if stop_when is not None and stop_when():
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown(timeout_sec=1.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
