"""The fix gate's rule: take up at the target, keep at the keep probability, no fix on a frame
below the map's floor, and never take a track up on such a frame."""

from __future__ import annotations

from liploc_ros.localization.fix_gate import GateInputs, GateRule

RULE = GateRule(target_precision=0.99, max_position_std_m=5.0, frame_floor=-2.0,
                keep_probability=0.9)  # fmt: skip


def test_a_sure_tight_matching_frame_takes_the_track_up_and_a_weaker_one_keeps_it():
    assert RULE.decide(False, GateInputs(0.995, 1.0, 0.5)) == (True, True, "")
    assert RULE.decide(False, GateInputs(0.95, 1.0, 0.5)) == (False, False, "lost")
    assert RULE.decide(True, GateInputs(0.95, 1.0, 0.5)) == (True, True, "")
    assert RULE.decide(True, GateInputs(0.85, 1.0, 0.5)) == (False, False, "lost")
    assert RULE.decide(False, GateInputs(0.995, 6.0, 0.5)) == (False, False, "uncertain")


def test_a_frame_below_the_floor_gets_no_fix_and_takes_no_track_up():
    """A prior holding the posterior (an operator's wrong pose) on frames that contradict it:
    no fix, and the next frame above the floor must meet the take-up target again."""
    mismatch = GateInputs(0.999, 1.0, -3.0)
    assert RULE.decide(False, mismatch) == (False, False, "mismatch")
    assert RULE.decide(True, mismatch) == (True, False, "mismatch")  # a kept track stays
    tracking = False
    for frame in (mismatch, mismatch, GateInputs(0.97, 1.0, -1.0)):
        tracking, ok, _ = RULE.decide(tracking, frame)
        assert not ok
    assert not tracking
