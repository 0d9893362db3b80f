"""The map file: exact round trips, corruption caught with clear errors, memory mapping."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from liploc_ros.errors import ConfigError, MapError, ModelMismatchError
from liploc_ros.mapdb import MAP_FORMAT_VERSION, MapDatabase
from liploc_ros.mapdb import fileformat as ff
from liploc_ros.mapdb.synthetic import synthetic_info, synthetic_map
from liploc_ros.preprocess.config import sensor_preset

DIM = 32


def _assert_same(a: MapDatabase, b: MapDatabase) -> None:
    assert len(a) == len(b)
    assert a.dtype == b.dtype
    for name in ("embeddings", "positions", "orientations", "stamps"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert np.array_equal(x, y), name
    assert np.array_equal(a.source_index, b.source_index)
    assert np.array_equal(a.frame_index, b.frame_index)
    assert a.info == b.info


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("index", ["flat", "ivf", "hnsw"])
def test_round_trip_is_exact(tmp_path, dtype, index):
    info = synthetic_info(
        DIM, sources=("drive-a", "drive-b"), lidar=sensor_preset("vlp16", crop=False)
    )
    db = synthetic_map(3000, DIM, seed=3, dtype=dtype, info=info)
    src = np.repeat(np.array([0, 1], np.int32), [1000, 2000])
    db = MapDatabase(
        db.embeddings, db.positions, db.orientations, db.stamps, info,
        source_index=src, frame_index=np.arange(3000) * 2,
    )  # fmt: skip
    path = db.save(tmp_path / "m.map", index=index, progress=False)
    assert path == tmp_path / "m.map"
    assert db.info.created
    assert db.info.liploc_ros_version
    for mmap in (True, False):
        loaded = MapDatabase.load(path, mmap=mmap)
        _assert_same(db, loaded)
        assert loaded.index_kind == index
        assert loaded.index_params == db.index_params
        assert loaded.format_version == MAP_FORMAT_VERSION
        assert isinstance(loaded.embeddings, np.memmap) == mmap
        q = np.asarray(db.embeddings[[5, 1500, 2999]], np.float32)
        assert np.array_equal(loaded.search(q, 3).indices, db.search(q, 3).indices)
    # The loaded arrays are read-only: a map cannot be changed behind its checksum's back.
    with pytest.raises(ValueError, match="read-only"):
        loaded.positions[0, 0] = 1.0


def test_pose_round_trip_and_from_poses():
    db = synthetic_map(50, DIM)
    poses = db.poses
    assert poses.shape == (50, 4, 4)
    again = MapDatabase.from_poses(db.embeddings, poses, db.stamps, db.info)
    assert np.allclose(again.positions, db.positions)
    assert np.allclose(again.poses, poses, atol=1e-12)
    bad = poses.copy()
    bad[7, :3, :3] *= 2.0
    with pytest.raises(MapError, match="entry 7 is not a rigid transform"):
        MapDatabase.from_poses(db.embeddings, bad, db.stamps, db.info)
    res = db.search(db.embeddings[[3]], 2)
    assert np.allclose(res.poses[0, 0], poses[res.indices[0, 0]])


def test_empty_map_round_trip(tmp_path):
    db = synthetic_map(0, DIM)
    db.save(tmp_path / "e.map")
    loaded = MapDatabase.load(tmp_path / "e.map")
    assert len(loaded) == 0
    res = loaded.search(np.ones(DIM, np.float32), 3)
    assert res.indices.tolist() == [[-1, -1, -1]]
    assert np.isneginf(res.scores).all()
    assert np.isnan(res.poses).all()


def test_bad_construction_is_refused():
    db = synthetic_map(20, DIM)
    emb = np.array(db.embeddings)
    emb[13, 4] = np.nan
    with pytest.raises(MapError, match="entry 13 contains NaN or inf"):
        MapDatabase(emb, db.positions, db.orientations, db.stamps, db.info)
    quats = np.array(db.orientations)
    quats[4] *= 1.5
    with pytest.raises(MapError, match="orientation of entry 4 is not a unit quaternion"):
        MapDatabase(db.embeddings, db.positions, quats, db.stamps, db.info)
    with pytest.raises(MapError, match="positions has shape"):
        MapDatabase(db.embeddings, db.positions[:10], db.orientations, db.stamps, db.info)
    with pytest.raises(MapError, match=r"32-d but MapInfo\.embed_dim is 16"):
        MapDatabase(db.embeddings, db.positions, db.orientations, db.stamps, synthetic_info(16))
    with pytest.raises(MapError, match="source_index of entry 0 is 3"):
        MapDatabase(
            db.embeddings, db.positions, db.orientations, db.stamps, db.info,
            source_index=np.full(20, 3),
        )  # fmt: skip
    with pytest.raises(MapError, match="float32 or float16"):
        MapDatabase(
            db.embeddings.astype(np.int32), db.positions, db.orientations, db.stamps, db.info
        )
    with pytest.raises(ConfigError, match="unknown map index 'annoy'"):
        db.save("/nonexistent/x.map", index="annoy")


def test_model_mismatch_names_both_models():
    db = synthetic_map(10, DIM, info=synthetic_info(DIM, fingerprint="aaaaaaaaaaaaaaaa"))
    db.check_model("aaaaaaaaaaaaaaaa")
    with pytest.raises(ModelMismatchError) as err:
        db.check_model("bbbbbbbbbbbbbbbb", "liploc-vit")
    text = str(err.value)
    assert "aaaaaaaaaaaaaaaa" in text
    assert "bbbbbbbbbbbbbbbb" in text
    assert "'synthetic'" in text
    assert "'liploc-vit'" in text


# ------------------------------------------------------------------------ corruption


@pytest.fixture(scope="module")
def saved_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "map.lmap"
    synthetic_map(2000, DIM, seed=1).save(path, index="ivf", progress=False)
    return path


@pytest.fixture
def saved(tmp_path, saved_template) -> Path:
    """A fresh copy of a good map with an IVF index, to damage."""
    path = tmp_path / "map.lmap"
    shutil.copyfile(saved_template, path)
    return path


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x10]))


def _section(path: Path, name: str) -> ff.Section:
    container, handle = ff.read_container(path, verify=False)
    handle.close()
    return container.sections[name]


def _header_offset(path: Path) -> int:
    with open(path, "rb") as f:
        return struct.unpack("<8sIIQQ", f.read(32))[3]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("header", "header checksum mismatch"),
        ("embeddings", "checksum mismatch in section 'embeddings'"),
        ("positions", "checksum mismatch in section 'positions'"),
        ("orientations", "checksum mismatch in section 'orientations'"),
        ("index", "checksum mismatch in section 'index'"),
        ("magic", "not a liploc map file"),
        ("prelude_digest", "header checksum mismatch"),
    ],
)
def test_flipped_byte_is_caught(saved, where, message):
    if where == "header":
        offset = _header_offset(saved) + 40
    elif where == "magic":
        offset = 2
    elif where == "prelude_digest":
        offset = 40
    else:
        section = _section(saved, where)
        offset = section.offset + section.nbytes // 2 + 3
    _flip(saved, offset)
    with pytest.raises(MapError, match=message) as err:
        MapDatabase.load(saved)
    assert str(saved) in str(err.value)


def test_without_verify_array_damage_goes_unseen_but_header_damage_not(saved):
    section = _section(saved, "stamps")
    _flip(saved, section.offset + 5)
    MapDatabase.load(saved, verify=False)  # the cheap checks pass
    with pytest.raises(MapError, match="checksum mismatch in section 'stamps'"):
        MapDatabase.load(saved)
    _flip(saved, _header_offset(saved) + 10)
    with pytest.raises(MapError, match="header checksum mismatch"):
        MapDatabase.load(saved, verify=False)


@pytest.mark.parametrize("cut", [1, 1000, "half", "prelude"])
def test_truncated_file_is_caught(saved, cut):
    size = saved.stat().st_size
    new = {"half": size // 2, "prelude": 30}.get(cut, size - cut if isinstance(cut, int) else 0)
    os.truncate(saved, new)
    with pytest.raises(MapError, match=r"truncated|shorter than a prelude") as err:
        MapDatabase.load(saved)
    if cut != "prelude":
        assert f"has {size} bytes, it has {new}" in str(err.value)


def test_trailing_bytes_and_other_files_are_refused(saved, tmp_path):
    with open(saved, "ab") as f:
        f.write(b"junk")
    with pytest.raises(MapError, match="4 unexpected bytes after the end"):
        MapDatabase.load(saved)
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a map at all, but it is long enough to have a prelude\n")
    with pytest.raises(MapError, match="not a liploc map file"):
        MapDatabase.load(text)
    with pytest.raises(MapError, match="does not exist"):
        MapDatabase.load(tmp_path / "missing.map")
    with pytest.raises(MapError, match="not a regular file"):
        MapDatabase.load(tmp_path)


def _rewrite_header(path: Path, edit, version: int | None = None) -> None:
    """Re-sign a map after editing its header, as a future or buggy writer would."""
    data = bytearray(path.read_bytes())
    magic, ver, flags, offset, length, _ = struct.unpack("<8sIIQQ32s", data[:64])
    header = edit(data[offset : offset + length].decode())
    head = struct.pack("<8sIIQQ", magic, version or ver, flags, offset, len(header))
    data = data[:offset] + header + b""
    data[:64] = head + hashlib.sha256(head + header).digest()
    path.write_bytes(bytes(data))


def test_newer_format_version_is_refused(saved):
    _rewrite_header(saved, lambda h: h.encode(), version=MAP_FORMAT_VERSION + 1)
    with pytest.raises(MapError, match=f"format version {MAP_FORMAT_VERSION + 1} is newer"):
        MapDatabase.load(saved)


def test_invalid_header_json_and_inconsistent_shapes(saved, tmp_path):
    broken = tmp_path / "broken.map"
    broken.write_bytes(saved.read_bytes())
    _rewrite_header(broken, lambda h: (h[:-5] + "!!").encode())
    with pytest.raises(MapError, match="header JSON invalid"):
        MapDatabase.load(broken)

    def shrink(h: str) -> bytes:
        meta = json.loads(h)
        sec = meta["sections"]["positions"]
        sec["shape"] = [1000, 3]
        sec["nbytes"] = 1000 * 3 * 8
        return json.dumps(meta).encode()

    _rewrite_header(saved, shrink)
    with pytest.raises(MapError, match="array shapes inconsistent: positions"):
        MapDatabase.load(saved, verify=False)


def test_unknown_info_key_is_a_map_error(saved):
    def add_key(h: str) -> bytes:
        meta = json.loads(h)
        meta["info"]["colour"] = "blue"
        return json.dumps(meta).encode()

    _rewrite_header(saved, add_key)
    with pytest.raises(MapError, match=r"invalid header.*colour"):
        MapDatabase.load(saved)


def test_incomplete_file_is_not_a_map(saved, tmp_path, monkeypatch):
    """A writer that dies mid-file leaves a temporary file with no magic in the prelude."""

    def boom(_n: int) -> None:
        raise KeyboardInterrupt

    db = MapDatabase.load(saved)
    monkeypatch.setattr(ff, "_write_hook", boom)
    with pytest.raises(KeyboardInterrupt):
        synthetic_map(100, DIM).save(saved)
    monkeypatch.setattr(ff, "_write_hook", None)
    _assert_same(db, MapDatabase.load(saved))  # the old map is intact
    assert [p.name for p in tmp_path.iterdir()] == [saved.name]  # temp file removed
    # What a SIGKILLed writer leaves behind (see test_mapdb_crash.py) is refused by name.
    partial = tmp_path / ".map.lmap.xyz.tmp"
    partial.write_bytes(b"\0" * 64 + saved.read_bytes()[64:1000])
    with pytest.raises(MapError, match="incomplete map file"):
        MapDatabase.load(partial)


def _rss_anon_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_mmap_load_does_not_read_the_embeddings_into_memory(tmp_path):
    n, dim = 65536, 256  # 64 MiB of embeddings
    emb = np.random.default_rng(0).standard_normal((n, dim), dtype=np.float32)
    path = synthetic_map(n, dim, embeddings=emb).save(tmp_path / "big.map", index="flat")
    del emb
    before = _rss_anon_kib()
    db = MapDatabase.load(path, mmap=True, verify=True)
    grown_mib = (_rss_anon_kib() - before) / 1024
    assert isinstance(db.embeddings, np.memmap)
    assert grown_mib < 16, f"loading added {grown_mib:.1f} MiB of private memory"
    assert db.search(np.ones(dim, np.float32), 1).indices.shape == (1, 1)
