"""Log functions that a worker thread can call without risking its life.

rclpy ties each call site (file, line, bytecode offset) of a logger to the first severity
and logger name it saw, and raises ``ValueError: Logger severity cannot be changed between
calls`` when one site is used with another. A helper that logs for several callers (the
warning throttle) must therefore never call ``logger.info`` and ``logger.warning`` from the
same line: :func:`severity_log` gives each severity a call site of its own. :func:`safe_log`
never raises: a worker that reports its own failure through something that can fail would
die of the report. No rclpy here (the logger is duck-typed).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["SEVERITIES", "safe_log", "severity_log"]

SEVERITIES = ("debug", "info", "warning", "error", "fatal")


def severity_log(logger: Any, severity: str) -> Callable[[str], None]:
    """``logger``'s ``severity`` method behind a call site used for that severity only.

    The lambdas are the point (PLW0108): each is the call site rclpy sees, one per severity.
    """
    if severity == "debug":
        return lambda text: logger.debug(text)  # noqa: PLW0108
    if severity == "info":
        return lambda text: logger.info(text)  # noqa: PLW0108
    if severity == "warning":
        return lambda text: logger.warning(text)  # noqa: PLW0108
    if severity == "error":
        return lambda text: logger.error(text)  # noqa: PLW0108
    if severity == "fatal":
        return lambda text: logger.fatal(text)  # noqa: PLW0108
    raise ValueError(f"unknown severity {severity!r}; expected one of {', '.join(SEVERITIES)}")


def safe_log(log: Callable[[str], Any], text: str) -> bool:
    """``log(text)``; if that raises, ``text`` goes to stderr instead; never raises.

    True when ``log`` took it.
    """
    try:
        log(text)
        return True
    except Exception as err:  # a broken logger must not take its caller down
        try:
            sys.stderr.write(f"{text}\n(the logger failed: {type(err).__name__}: {err})\n")
            sys.stderr.flush()
        except Exception:  # stderr closed: nowhere left to say it
            pass
        return False
