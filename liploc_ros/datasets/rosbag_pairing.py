"""Pairing two time-stamped message streams (scans and images) by nearest stamp, streaming.

The bag reader anchors each frame on one sensor's message and pairs it with the other
sensor's nearest message within a tolerance; :func:`pair_by_stamp` does it in one pass over
the bag's order while holding only a window of messages, so a long bag never sits in memory.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["pair_by_stamp"]


def pair_by_stamp(
    messages: Iterable[tuple[str, float, Any]],
    anchor_topic: str,
    partner_topic: str | None,
    tolerance: float,
    window: float,
) -> Iterator[tuple[float, Any, tuple[float, Any] | None]]:
    """Pair each anchor message with the partner message nearest in stamp, streaming.

    Yields ``(anchor stamp, anchor msg, (partner stamp, partner msg) or None)`` in anchor
    order. Assumes each topic's stamps rise (as a driver publishes them); an anchor is decided
    once a partner later than its stamp + tolerance arrived, or once the stream moved
    ``window`` seconds past it, so memory holds only that window.
    """
    if partner_topic is None:
        for topic, stamp, msg in messages:
            if topic == anchor_topic:
                yield stamp, msg, None
        return
    pending: deque[tuple[float, Any]] = deque()
    partners: deque[tuple[float, Any]] = deque()
    newest = latest_partner = -math.inf
    last_anchor = -math.inf

    def best(stamp: float) -> tuple[float, Any] | None:
        candidates = [p for p in partners if abs(p[0] - stamp) <= tolerance]
        return min(candidates, key=lambda p: abs(p[0] - stamp)) if candidates else None

    for topic, stamp, msg in messages:
        if topic == anchor_topic:
            pending.append((stamp, msg))
        elif topic == partner_topic:
            partners.append((stamp, msg))
            latest_partner = max(latest_partner, stamp)
        newest = max(newest, stamp)
        while pending and (
            latest_partner > pending[0][0] + tolerance
            or newest > pending[0][0] + tolerance + window
        ):
            a_stamp, a_msg = pending.popleft()
            last_anchor = max(last_anchor, a_stamp)
            yield a_stamp, a_msg, best(a_stamp)
        horizon = max(last_anchor, newest - window) - tolerance
        if pending:
            horizon = min(horizon, pending[0][0] - tolerance)
        while partners and partners[0][0] < horizon:
            partners.popleft()
    while pending:
        a_stamp, a_msg = pending.popleft()
        yield a_stamp, a_msg, best(a_stamp)
