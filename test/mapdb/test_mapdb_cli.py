"""merge_maps and the map-info / merge-maps commands."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from liploc_ros.cli import main
from liploc_ros.errors import MapError, ModelMismatchError
from liploc_ros.mapdb import MapDatabase, merge_maps
from liploc_ros.mapdb.synthetic import synthetic_info, synthetic_map
from liploc_ros.preprocess.config import sensor_preset

DIM = 16
PNG = b"\x89PNG\r\n\x1a\n"


def _map(n, seed, **info):
    return synthetic_map(n, DIM, seed=seed, info=synthetic_info(DIM, **info))


def test_merge_concatenates_and_remaps_sources():
    a = _map(30, 1, sources=("drive-a",))
    b = _map(20, 2, sources=("drive-b", "drive-a"))
    b = MapDatabase(
        b.embeddings, b.positions, b.orientations, b.stamps, b.info,
        source_index=np.repeat([0, 1], 10), frame_index=b.frame_index,
    )  # fmt: skip
    merged = merge_maps([a, b])
    assert len(merged) == 50
    assert merged.info.sources == ("drive-a", "drive-b")
    assert merged.source_index.tolist() == [0] * 30 + [1] * 10 + [0] * 10
    assert np.array_equal(merged.embeddings[30:], b.embeddings)
    assert np.array_equal(merged.positions[:30], a.positions)
    assert np.array_equal(merged.frame_index[30:], b.frame_index)
    assert merged.dtype == np.float32


def test_merge_refuses_incompatible_maps():
    a = _map(10, 1)
    other_model = _map(10, 2, fingerprint="feedfacefeedface", model_name="other")
    with pytest.raises(ModelMismatchError) as err:
        merge_maps([a, other_model])
    assert "0123456789abcdef" in str(err.value)
    assert "feedfacefeedface" in str(err.value)
    with pytest.raises(MapError, match=r"different LiDAR preprocessing.*max_range"):
        merge_maps(
            [a, _map(10, 2, lidar=dataclasses.replace(sensor_preset("hdl64e"), max_range=80.0))]
        )
    with pytest.raises(MapError, match=r"different frames.*'map' vs 'world'"):
        merge_maps([a, _map(10, 2, frame_id="world")])
    with pytest.raises(MapError, match="no maps"):
        merge_maps([])


def test_map_info_prints_the_facts_and_draws_the_route(tmp_path, capsys):
    path = _map(400, 3, sources=("kitti/00",)).save(tmp_path / "town.lmap")
    assert main(["map-info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "entries:      400" in out
    assert "synthetic (fingerprint 0123456789abcdef)" in out
    assert "16-d float32" in out
    assert "flat (exact search)" in out
    assert "route length: 399.0 m" in out  # 1 m steps
    assert "kitti/00 (400 entries" in out
    png = tmp_path / "town.route.png"
    assert f"route plot:   {png}" in out
    assert png.read_bytes()[:8] == PNG

    plot = tmp_path / "plots" / "r.png"
    assert main(["map-info", str(path), "--json", "--plot", str(plot)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["entries"] == 400
    assert info["plot"] == str(plot)
    assert info["file_bytes"] == path.stat().st_size
    assert plot.read_bytes()[:8] == PNG


def test_merge_maps_command(tmp_path, capsys):
    a = _map(300, 1, sources=("a",)).save(tmp_path / "a.lmap")
    b = _map(200, 2, sources=("b",)).save(tmp_path / "b.lmap")
    out = tmp_path / "ab.lmap"
    assert main(["merge-maps", str(out), str(a), str(b)]) == 0
    assert "500 entries from 2 maps" in capsys.readouterr().out
    merged = MapDatabase.load(out)
    assert merged.info.sources == ("a", "b")
    assert main(["map-info", str(out), "--no-plot"]) == 0
    assert "a (300 entries, 299.0 m); b (200 entries, 199.0 m)" in capsys.readouterr().out
    # refusing: existing output, a different model (named), a corrupt input
    assert main(["merge-maps", str(out), str(a), str(b)]) == 1
    assert "exists" in capsys.readouterr().err
    c = _map(10, 3, fingerprint="feedfacefeedface").save(tmp_path / "c.lmap")
    assert main(["merge-maps", str(tmp_path / "ac.lmap"), str(a), str(c)]) == 1
    assert "feedfacefeedface" in capsys.readouterr().err
    assert not (tmp_path / "ac.lmap").exists()
    with open(b, "r+b") as f:
        f.seek(200)
        f.write(b"\xff\xff")
    assert main(["map-info", str(b)]) == 1
    assert "checksum mismatch" in capsys.readouterr().err
