"""MapBuilder and build_map: the overlapped pipeline keeps every kept scan, in order, and an
interrupted build writes nothing (or a checkpoint it can resume from)."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
from mapping_helpers import ListIndexedSource, ListSource, drive_frames, with_stop

from liploc_ros.errors import DatasetError, EmptyCloudError, MapError, PreprocessError
from liploc_ros.mapdb import MapDatabase
from liploc_ros.mapping import (
    BuildCheckpoint,
    MapBuildConfig,
    MapBuilder,
    build_map,
    checkpoint_path_for,
    select_keyframes,
)
from liploc_ros.mapping.pipeline import checkpoint_match
from liploc_ros.model import Embedder


def stop_frames() -> list:
    """12 frames 1 m apart with a stop of 6 extra scans at frame 5: 18 frames."""
    return with_stop(drive_frames(3, 12), at=5, repeats=6)


def route(frames: list) -> float:
    positions = np.stack([f.pose[:3, 3] for f in frames])
    return float(np.linalg.norm(np.diff(positions, axis=0), axis=1).sum())


def expected(embedder: Embedder, frames: list, kept: np.ndarray) -> np.ndarray:
    return embedder.embed_scans([frames[i].points for i in kept])


def assert_map_is(db: MapDatabase, embedder: Embedder, frames: list, kept: np.ndarray) -> None:
    assert len(db) == len(kept)
    np.testing.assert_allclose(
        np.asarray(db.embeddings, np.float32), expected(embedder, frames, kept),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip
    truth = np.stack([frames[i].pose for i in kept])
    np.testing.assert_allclose(db.poses, truth, atol=1e-9)
    np.testing.assert_allclose(db.stamps, [frames[i].stamp for i in kept])
    np.testing.assert_array_equal(db.frame_index, kept)


@pytest.mark.parametrize("indexed", [False, True], ids=["stream", "indexed"])
@pytest.mark.parametrize("workers", [0, 3])
def test_build_map_equals_embedding_the_kept_scans(embedder, indexed, workers):
    frames = stop_frames()
    kd = 2.0
    # uneven read times make the pool finish out of order: the map must not be reordered
    source = ListIndexedSource(frames, jitter=0.01) if indexed else ListSource(frames)
    config = MapBuildConfig(keyframe_distance=kd, batch_size=3, workers=workers)
    db, summary = build_map(source, embedder, config, progress=False)
    kept = select_keyframes(np.stack([f.pose for f in frames]), kd)
    assert_map_is(db, embedder, frames, kept)
    assert summary.entries == len(kept) < len(frames) // 2
    assert summary.scans_read == len(frames)
    assert summary.scans_skipped_keyframe == len(frames) - len(kept)
    assert summary.scans_skipped_no_pose == 0
    assert summary.route_length_m == pytest.approx(route(frames), abs=1e-6)
    assert summary.scans_per_second > 0
    if indexed:  # only the kept frames were read at all
        assert sorted(source.read) == kept.tolist()
    assert db.info.model_fingerprint == embedder.fingerprint
    assert db.info.sources == ("indexed" if indexed else "list",)
    assert db.info.lidar == embedder.loaded.preprocess.lidar


def test_stop_gives_one_entry_and_zero_distance_keeps_all(embedder):
    frames = stop_frames()
    db, _ = build_map(
        ListSource(frames), embedder, MapBuildConfig(keyframe_distance=1.0), progress=False
    )
    stop_poses = np.isclose(db.positions, frames[5].pose[:3, 3]).all(axis=1)
    assert stop_poses.sum() == 1
    assert len(db) == 12
    gaps = np.linalg.norm(np.diff(db.positions, axis=0), axis=1)
    assert (gaps >= 1.0 - 1e-9).all()
    db0, summary = build_map(
        ListSource(frames), embedder, MapBuildConfig(keyframe_distance=0), progress=False
    )
    assert len(db0) == summary.entries == len(frames)
    assert_map_is(db0, embedder, frames, np.arange(len(frames)))


@pytest.mark.parametrize("indexed", [False, True], ids=["stream", "indexed"])
def test_frames_without_pose_are_skipped_and_counted(embedder, indexed):
    frames = list(drive_frames(3, 10))
    for i in (0, 4, 5):
        frames[i] = replace(frames[i], pose=None)
    frames[7] = replace(frames[7], pose=np.full((4, 4), np.nan))
    source = ListIndexedSource(frames) if indexed else ListSource(frames)
    db, summary = build_map(
        source, embedder, MapBuildConfig(keyframe_distance=0, workers=2), progress=False
    )
    assert summary.scans_skipped_no_pose == 4
    assert summary.entries == len(db) == 6
    assert_map_is(db, embedder, frames, np.array([1, 2, 3, 6, 8, 9]))
    # the route joins the posed frames only: 1-2-3-6-8-9
    assert summary.route_length_m == pytest.approx(route([frames[i] for i in (1, 2, 3, 6, 8, 9)]))


def test_empty_scans_are_skipped_and_counted(embedder):
    frames = list(drive_frames(3, 6))
    frames[2] = replace(frames[2], points=np.zeros((0, 4), np.float32))
    db, summary = build_map(
        ListSource(frames), embedder, MapBuildConfig(keyframe_distance=0), progress=False
    )
    assert summary.scans_skipped_empty == 1
    assert len(db) == 5
    np.testing.assert_array_equal(db.frame_index, [0, 1, 3, 4, 5])


def test_no_entry_at_all_is_an_error(embedder):
    frames = [replace(f, pose=None) for f in drive_frames(3, 6)[:3]]
    with pytest.raises(DatasetError, match=r"no map entry.*3 without a pose"):
        build_map(ListSource(frames), embedder, progress=False)


def test_a_reader_error_fails_the_build_with_its_message(embedder):
    frames = list(drive_frames(3, 6))
    source = ListSource(frames, fail_at=3, error=DatasetError("scan 3 is corrupt"))
    with pytest.raises(DatasetError, match="scan 3 is corrupt"):
        build_map(source, embedder, MapBuildConfig(workers=2), progress=False)
    assert not any(t.name.startswith("liploc-map") for t in threading.enumerate())


def test_incremental_builder(embedder, tmp_path):
    frames = stop_frames()
    builder = MapBuilder(embedder, MapBuildConfig(keyframe_distance=2.0, batch_size=4),
                         source="live")  # fmt: skip
    added = [builder.add_scan(f.points, f.pose, f.stamp, frame_index=f.index) for f in frames]
    kept = select_keyframes(np.stack([f.pose for f in frames]), 2.0)
    np.testing.assert_array_equal(np.flatnonzero(added), kept)
    assert len(builder) == len(kept)
    assert builder.embedded_count == 4  # 2 still pending
    assert builder.add_scan(frames[0].points, None, 0.0) is False
    assert builder.skipped_no_pose == 1
    assert builder.route_length_m == pytest.approx(route(frames), abs=1e-6)
    path = builder.save(tmp_path / "live.lmap")
    assert_map_is(MapDatabase.load(path), embedder, frames, kept)
    assert [p.name for p in tmp_path.iterdir()] == ["live.lmap"]


def test_builder_inputs_are_checked(embedder):
    builder = MapBuilder(embedder)
    points = drive_frames(3, 6)[0].points
    with pytest.raises(PreprocessError, match="4 x 4"):
        builder.add_scan(points, np.eye(3), 0.0)
    with pytest.raises(EmptyCloudError):
        builder.add_scan(np.zeros((0, 4), np.float32), np.eye(4), 0.0)
    assert builder.keyframes.seen == 0  # an empty scan is not a keyframe
    with pytest.raises(PreprocessError, match="preprocessed scan"):
        builder.add_input(np.zeros((3, 8, 8), np.float32), np.eye(4), 0.0)
    with pytest.raises(MapError, match="no map entries"):
        builder.to_database()


def test_float16_storage(embedder):
    frames = list(drive_frames(3, 6))
    config = MapBuildConfig(keyframe_distance=0, dtype="float16")
    db, _ = build_map(ListSource(frames), embedder, config, progress=False)
    assert np.asarray(db.embeddings).dtype == np.float16
    np.testing.assert_allclose(
        np.asarray(db.embeddings, np.float32), expected(embedder, frames, np.arange(6)),
        rtol=2e-3, atol=2e-3,
    )  # fmt: skip


@pytest.mark.parametrize("indexed", [False, True], ids=["stream", "indexed"])
def test_interrupt_leaves_the_previous_map_and_no_temp_files(embedder, tmp_path, indexed):
    frames = list(drive_frames(3, 10))
    out = tmp_path / "map.lmap"
    previous, _ = build_map(ListSource(frames[:3]), embedder, progress=False)
    previous.save(out)
    before = out.read_bytes()
    cls = ListIndexedSource if indexed else ListSource
    source = cls(frames, fail_at=7)
    config = MapBuildConfig(keyframe_distance=0, batch_size=2, workers=2)

    def build_and_save() -> None:  # as the CLI does
        db, _ = build_map(source, embedder, config, progress=False)
        db.save(out)

    with pytest.raises(KeyboardInterrupt):
        build_and_save()
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["map.lmap"]
    assert not any(t.name.startswith("liploc-map-reader") for t in threading.enumerate())


def test_interrupted_build_resumes_to_the_same_map(embedder, tmp_path):
    frames = stop_frames()
    config = MapBuildConfig(keyframe_distance=1.5, batch_size=2, workers=2)
    checkpoint = checkpoint_path_for(tmp_path / "map.lmap")
    with pytest.raises(KeyboardInterrupt):
        build_map(ListSource(frames, name="drive", fail_at=13), embedder, config,
                  progress=False, checkpoint=checkpoint)  # fmt: skip
    assert checkpoint.exists()
    saved = BuildCheckpoint(checkpoint, checkpoint_match(ListSource([], "drive"), embedder,
                                                         config)).load()  # fmt: skip
    assert saved.entries > 0
    assert saved.progress.examined <= 13

    db, summary = build_map(ListSource(frames, name="drive"), embedder, config, progress=False,
                            checkpoint=checkpoint, resume=True)  # fmt: skip
    full, full_summary = build_map(ListSource(frames, name="drive"), embedder, config,
                                   progress=False)  # fmt: skip
    assert summary.resumed_entries == saved.entries
    assert len(db) == len(full)
    np.testing.assert_allclose(db.embeddings, full.embeddings, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(db.frame_index, full.frame_index)
    np.testing.assert_allclose(db.poses, full.poses)
    for field in ("scans_read", "scans_skipped_keyframe", "entries"):
        assert getattr(summary, field) == getattr(full_summary, field), field
    assert summary.route_length_m == pytest.approx(full_summary.route_length_m)

    # a checkpoint made with other settings is refused, naming what differs
    other = replace(config, keyframe_distance=3.0)
    with pytest.raises(Exception, match="keyframe_distance"):
        build_map(ListSource(frames, name="drive"), embedder, other, progress=False,
                  checkpoint=checkpoint, resume=True)  # fmt: skip


def test_a_damaged_checkpoint_is_refused_with_advice(embedder, tmp_path):
    checkpoint = tmp_path / "map.lmap.resume.npz"
    checkpoint.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(MapError, match=r"unreadable.*delete it"):
        build_map(ListSource(list(drive_frames(3, 6))), embedder, progress=False,
                  checkpoint=checkpoint, resume=True)  # fmt: skip
