"""A map's score calibration: it recovers the match and null distributions of a field built
here, round-trips through the map file, and a map without one (or with another model's)
gets the conservative evidence model and a warning that says why."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.stats import norm

from liploc_ros.cli import main as liploc
from liploc_ros.errors import MapError
from liploc_ros.localization.calibration import (
    LabelledDrive,
    ScoreCalibration,
    calibrate,
    conservative_evidence,
    evidence_for,
    map_calibration,
)
from liploc_ros.localization.evidence_trail import WINDOW_STEPS, calibration_windows
from liploc_ros.localization.score_samples import (
    band_samples,
    entry_yaw,
    nearest_match_series,
    pair_scores,
    ratio_table,
)
from liploc_ros.localization.scores import embedding_stats, standardized
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapdb.synthetic import synthetic_info

DIM = 64
SPACING = 2.0  # m between entries: a frame's own entry is alone in the first band
ENTRIES = 300
NOISE = 0.25  # per dimension


def _road() -> tuple[MapDatabase, np.ndarray]:
    """A straight road along x with i.i.d. random unit embeddings (entries unrelated to
    each other), and the poses of its entries."""
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((ENTRIES, DIM))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    poses = np.repeat(np.eye(4)[None], ENTRIES, axis=0)
    poses[:, 0, 3] = np.arange(ENTRIES) * SPACING
    db = MapDatabase.from_poses(emb.astype(np.float32), poses, np.arange(ENTRIES) * 0.1,
                                synthetic_info(DIM, fingerprint="road"))  # fmt: skip
    return db, poses


def _drive(db: MapDatabase, poses: np.ndarray, seed: int) -> LabelledDrive:
    """Frames taken at every entry: its embedding plus isotropic noise."""
    rng = np.random.default_rng(seed)
    q = np.asarray(db.embeddings, np.float64) + NOISE * rng.standard_normal((ENTRIES, DIM))
    return LabelledDrive(q.astype(np.float32), poses, None, f"road drive {seed}")


def _known(db: MapDatabase, drive: LabelledDrive) -> tuple[np.ndarray, np.ndarray]:
    """The field's true place and elsewhere scores, by brute force: every frame against its
    own entry, and against every entry more than 30 m away."""
    mean, cov = embedding_stats(np.asarray(db.embeddings))
    q = np.asarray(drive.queries, np.float64)
    z = standardized(q, q @ np.asarray(db.embeddings, np.float64).T, mean, cov)
    x = np.asarray(db.positions)[:, 0]
    far = np.abs(x[:, None] - x[None, :]) > 30.0
    return np.diag(z), z[far]


def test_calibration_recovers_the_match_and_null_distributions_of_a_known_field():
    db, poses = _road()
    drive = _drive(db, poses, 1)
    cal = calibrate(db, [drive], model_fingerprint="road", same_drive=False)
    match, null = _known(db, drive)
    # about sqrt(D) / |q|: a unit embedding's score over the spread of random unit vectors
    assert match.mean() == pytest.approx(math.sqrt(DIM / (1.0 + DIM * NOISE**2)), rel=0.15)
    assert cal.match_mean == pytest.approx(match.mean(), abs=1e-6)
    assert cal.match_std == pytest.approx(match.std(), abs=1e-6)
    assert cal.null_mean == pytest.approx(null.mean(), abs=0.02)  # the null: a subsample
    assert cal.null_std == pytest.approx(null.std(), abs=0.02)
    assert cal.null_mean == pytest.approx(0.0, abs=0.05)
    assert cal.null_std == pytest.approx(1.0, abs=0.05)
    assert cal.frames == ENTRIES
    assert cal.model_fingerprint == "road"
    # the log ratio at the place is the Gaussians' where both are well sampled
    ev = cal.evidence()
    mean, std = match.mean(), match.std()
    z = np.linspace(mean - std, mean + std, 5)
    true = norm.logpdf(z, mean, std) - norm.logpdf(z, null.mean(), null.std())
    np.testing.assert_allclose(ev.llr(z), true, rtol=0.15, atol=0.5)  # 300 frames: a rough tail
    assert ev.llr(np.array([0.0]))[0] < -3.0  # where elsewhere scores: strong evidence against
    # entries 2 m and more away are unrelated here: no evidence for the place there
    assert ev.llr(np.array([mean]), np.array([2.0]))[0] < 0.5 * ev.llr(np.array([mean]))[0]


def test_the_ratio_table_is_the_density_ratio_of_two_gaussians():
    rng = np.random.default_rng(3)
    match = rng.normal(2.0, 0.5, 2000)
    null = rng.normal(0.0, 1.0, 200_000)
    grid, llr, below = ratio_table([match], null)
    inside = (grid > 1.3) & (grid < 2.6)
    true = norm.logpdf(grid, 2.0, 0.5) - norm.logpdf(grid, 0.0, 1.0)
    np.testing.assert_allclose(llr[0][inside], true[inside], atol=0.6)
    assert np.all(np.diff(llr[0]) >= 0)  # monotone
    assert llr[0][-1] == pytest.approx(
        llr[0][np.searchsorted(grid, np.percentile(match, 95))], abs=1e-9
    )  # flat beyond the match's 95th percentile
    # E[LR | z <= t] under the null: about 1 over everything, less below
    assert below[-1] == pytest.approx(1.0, abs=0.3)
    assert below[0] < below[-1]


def test_a_random_model_is_calibrated_as_telling_nothing_apart():
    db, poses = _road()
    rng = np.random.default_rng(5)
    unrelated = LabelledDrive(rng.standard_normal((ENTRIES, DIM)).astype(np.float32), poses)
    cal = calibrate(db, [unrelated], model_fingerprint="road", same_drive=False)
    assert abs(cal.match_mean) < 0.3
    assert max(cal.log_ratio[0]) < 1.0  # no score is much evidence for any place


def test_a_calibration_round_trips_through_the_map_file_and_map_info(tmp_path, capsys):
    db, poses = _road()
    cal = calibrate(db, [_drive(db, poses, 1)], model_fingerprint="road", same_drive=False)
    db.set_calibration(cal.to_dict())
    path = db.save(tmp_path / "road.lmap")
    loaded = MapDatabase.load(path)
    back = map_calibration(loaded)
    assert back == cal
    assert loaded.format_version == 3
    evidence, warning = evidence_for(loaded)
    assert warning == ""
    np.testing.assert_allclose(evidence.log_ratio, cal.evidence().log_ratio)
    assert evidence.scale == cal.evidence_scale
    # liploc map-info shows it, in text and JSON
    assert liploc(["map-info", str(path), "--no-plot"]) == 0
    text = capsys.readouterr().out
    assert f"calibration: labelled drive, {cal.frames} frames" in text
    assert f"true place z {cal.match_mean:.2f}" in text
    assert f"evidence scale {cal.evidence_scale:.2f}" in text
    assert len(cal.window_floors) == len(WINDOW_STEPS)
    assert evidence.window_floors == cal.window_floors
    assert f"2 frame steps sum below {cal.window_floors[0]:+.2f}" in text
    assert liploc(["map-info", str(path), "--no-plot", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert ScoreCalibration.from_dict(info["calibration"]) == cal
    # a map saved again keeps it; set_calibration(None) removes it, and map-info says so
    loaded.set_calibration(None)
    bare = loaded.save(tmp_path / "bare.lmap")
    assert map_calibration(MapDatabase.load(bare)) is None
    assert liploc(["map-info", str(bare), "--no-plot"]) == 0
    assert "calibration:  none: the localizers use conservative" in capsys.readouterr().out


def test_a_map_without_calibration_or_with_another_models_gets_conservative_settings(tmp_path):
    db, poses = _road()
    evidence, warning = evidence_for(db)
    assert "no score calibration" in warning
    assert "liploc calibrate" in warning
    np.testing.assert_allclose(evidence.log_ratio, conservative_evidence().log_ratio)
    cal = calibrate(db, [_drive(db, poses, 1)], model_fingerprint="another", same_drive=False)
    db.set_calibration(cal.to_dict())
    evidence, warning = evidence_for(db)
    assert "another" in warning
    assert "not of its own model road" in warning
    np.testing.assert_allclose(evidence.log_ratio, conservative_evidence().log_ratio)


def test_a_calibration_from_before_the_window_floors_still_loads_and_tests_frames_alone():
    db, poses = _road()
    cal = calibrate(db, [_drive(db, poses, 1)], model_fingerprint="road", same_drive=False)
    older = cal.to_dict()
    del older["window_floors"]
    db.set_calibration(older)
    back = map_calibration(db)
    assert back.window_floors == ()
    assert back.evidence().window_floors == ()
    assert back.evidence().frame_floor == cal.frame_floor
    with pytest.raises(MapError, match="window_floors"):
        ScoreCalibration.from_dict({**cal.to_dict(), "window_floors": [1.0]}).evidence()


def test_the_gate_floors_stop_about_one_percent_of_another_days_true_frames():
    """Measured on one drive, the floors of the frame and of its windows together stop about
    1% of the true place's frames of another drive (each frame's evidence at the nearest
    entry facing its heading)."""
    db, poses = _road()
    cal = calibrate(db, [_drive(db, poses, 1)], model_fingerprint="road", same_drive=False)
    evidence = cal.evidence()
    mean, cov = embedding_stats(np.asarray(db.embeddings))
    tree = cKDTree(np.asarray(db.positions)[:, :2])
    yaw = entry_yaw(np.asarray(db.orientations))
    emb = np.asarray(db.embeddings, np.float32)
    stopped, frames = 0, 0
    for seed in range(2, 12):
        drive = _drive(db, poses, seed)
        bands = [pairs for _, pairs in band_samples(tree, yaw, drive.truth, 0.0)]
        z = [pair_scores(drive.queries, emb, pairs, mean, cov) for pairs in bands]
        idx, z_place = nearest_match_series(bands, z)
        values = evidence.llr(z_place)
        sums = calibration_windows(values, drive.truth[idx, :2, 3], evidence.frame_step_m)
        low = (values < cal.frame_floor) | np.any(sums < np.asarray(cal.window_floors), axis=1)
        stopped += int(low.sum())
        frames += len(values)
    print(f"stopped {stopped} of {frames} true frames")
    assert 0.001 <= stopped / frames <= 0.03


def test_a_corrupt_calibration_is_a_clear_error():
    db, _ = _road()
    db.set_calibration({"model_fingerprint": "road", "z": [1, 2]})
    with pytest.raises(MapError, match="calibration"):
        map_calibration(db)
    db.set_calibration({"nonsense": 1})
    with pytest.raises(MapError, match="unknown key"):
        map_calibration(db)
    with pytest.raises(MapError, match="mapping"):
        ScoreCalibration.from_dict([1, 2])


def test_the_map_drive_is_matched_from_aside():
    """The map's own drive scores its own scans too well: its frames are matched as if from
    1.5 m aside, so at the same frames the calibration sees a weaker match."""
    db, poses = _road()
    drive = _drive(db, poses, 1)
    other_day = calibrate(db, [drive], model_fingerprint="road", same_drive=False)
    own = calibrate(db, [drive], model_fingerprint="road", same_drive=True)
    # entries are unrelated beyond their own spot here: from aside, no match at all
    assert own.match_mean < other_day.match_mean - 1.0
    assert own.method == "map drive"
    assert other_day.method == "labelled drive"
