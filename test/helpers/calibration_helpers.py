"""A hand-made score calibration for the tests that exercise a node's plumbing (topics,
timing, message fields) with an untrained model on a random map: it declares the map's top
scores to be matches, so that frames get fixes whatever the images show.

A real calibration of such a map would (rightly) publish no fix at all; what a calibration
measures and how the gate uses it is tested in test/localization/test_calibration.py and
test_sequence_trust.py."""

from __future__ import annotations

from typing import Any

import numpy as np

from liploc_ros.localization.calibration import ScoreCalibration

#: log-likelihood ratio per unit of z-score, and the z-score where it crosses 0: steep enough
#: that a random map's best place (a z-score ~0.3 above the next) is "certain"
SLOPE, BREAK_EVEN_Z = 40.0, 1.5


def trusting_calibration(fingerprint: str, entries: int) -> dict[str, Any]:
    """The calibration dict (as stored in a map) of ``fingerprint``'s scores on a map of
    ``entries`` entries that trusts the top match (see the module docstring)."""
    z = np.linspace(-4.0, 6.0, 41)
    llr = SLOPE * (z - BREAK_EVEN_Z)
    # the entries a search did not retrieve count nothing: the top matches decide alone
    below = np.zeros_like(z)
    calibration = ScoreCalibration(
        model_fingerprint=fingerprint, method="hand-made (tests)", source="test helper",
        frames=0, match_samples=0, null_samples=0, entries=entries,
        z=tuple(z), log_ratio=(tuple(llr),), band_edges_m=(),
        null_mean_ratio_below=tuple(below), correlation_length_m=1.0, frame_step_m=1.0,
        match_mean=2.5, match_std=0.5, null_mean=0.0, null_std=1.0, null_best_median=2.0,
        null_best_p95=2.5, null_entries_per_frame=entries, gumbel_location=2.0,
        gumbel_scale=0.3,
    )  # fmt: skip
    return calibration.to_dict()
