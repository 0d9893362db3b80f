"""Places among map entries: a keyframe holds one entry per crop heading, and those entries
are one place, not several. Every count of places (the localizer's ``top_k``, Recall@K in
``liploc localize`` and ``liploc eval``) goes through :func:`first_of_each_place`."""

from __future__ import annotations

import numpy as np

__all__ = ["RECALL_COUNTS", "first_of_each_place"]

#: what Recall@K counts, said in summary.json by ``liploc localize`` and ``liploc eval`` alike
RECALL_COUNTS = "distinct map scans (the crop headings of one keyframe count once)"


def first_of_each_place(places: np.ndarray, k: int | None = None) -> np.ndarray:
    """Positions, best first, of the first entry of each distinct place in ``places`` (the
    place ids of a best-first list of entries); only the ``k`` best places' with ``k``.

    >>> first_of_each_place(np.array([7, 7, 3, 7, 5]), 2).tolist()
    [0, 2]
    """
    ids = np.asarray(places).reshape(-1)
    _, first = np.unique(ids, return_index=True)
    first = np.sort(first)
    return first if k is None else first[: max(int(k), 0)]
