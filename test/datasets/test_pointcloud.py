"""PointCloud2 buffers <-> N x 4 float32 (liploc_ros.datasets.pointcloud)."""

from __future__ import annotations

import numpy as np
import pytest

from liploc_ros.datasets.pointcloud import (
    CorruptCloudError,
    PointCloudFormatError,
    PointField,
    cloud_to_xyzi,
    xyzi_to_cloud,
)

RNG = np.random.default_rng(5)


def test_roundtrip_is_exact():
    points = RNG.normal(size=(50, 4)).astype(np.float32)
    fields, step, data = xyzi_to_cloud(points)
    assert step == 16
    assert [f.name for f in fields] == ["x", "y", "z", "intensity"]
    out = cloud_to_xyzi(fields, 1, 50, step, 16 * 50, data)
    np.testing.assert_array_equal(out, points)
    assert out.dtype == np.float32
    assert out.shape == (50, 4)


def test_xyz_only_input_gets_zero_intensity():
    fields, step, data = xyzi_to_cloud(np.ones((3, 3)))
    out = cloud_to_xyzi(fields, 1, 3, step, 48, data)
    np.testing.assert_array_equal(out[:, 3], 0)


def _ouster_like(height: int, width: int, pad: int) -> tuple[np.ndarray, list, int, int, bytes]:
    """An organised cloud with mixed types, padding inside each point and after each row."""
    dtype = np.dtype(
        {
            "names": ["x", "y", "z", "t", "intensity", "ring"],
            "formats": ["<f4", "<f4", "<f4", "<u4", "<u2", "u1"],
            "offsets": [0, 4, 8, 16, 20, 22],
            "itemsize": 32,
        }
    )
    rows = np.zeros((height, width), dtype)
    xyz = RNG.normal(size=(height, width, 3)).astype(np.float32)
    inten = RNG.integers(0, 60000, (height, width)).astype(np.uint16)
    rows["x"], rows["y"], rows["z"] = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    rows["intensity"] = inten
    row_step = width * 32 + pad
    buf = np.full((height, row_step), 0xAB, np.uint8)
    buf[:, : width * 32] = rows.view(np.uint8).reshape(height, width * 32)
    fields = [
        PointField("x", 0, 7),
        PointField("y", 4, 7),
        PointField("z", 8, 7),
        PointField("t", 16, 6),
        PointField("intensity", 20, 4),
        PointField("ring", 22, 2),
    ]
    expected = np.concatenate([xyz, inten[..., None].astype(np.float32)], axis=2).reshape(-1, 4)
    return expected, fields, 32, row_step, buf.tobytes()


def test_organised_cloud_with_row_padding_and_uint16_intensity():
    expected, fields, step, row_step, data = _ouster_like(4, 6, pad=24)
    out = cloud_to_xyzi(fields, 4, 6, step, row_step, data)
    np.testing.assert_array_equal(out, expected)


def test_non_finite_points_are_dropped():
    points = RNG.normal(size=(6, 4)).astype(np.float32)
    points[1, 0] = np.nan
    points[3, 2] = np.inf
    points[4, 3] = np.nan  # a NaN intensity too
    fields, step, data = xyzi_to_cloud(points)
    out = cloud_to_xyzi(fields, 1, 6, step, 96, data)
    np.testing.assert_array_equal(out, points[[0, 2, 5]])
    all_nan = np.full((4, 4), np.nan, np.float32)
    fields, step, data = xyzi_to_cloud(all_nan)
    assert cloud_to_xyzi(fields, 1, 4, step, 64, data).shape == (0, 4)


@pytest.mark.parametrize("name", ["intensity", "i", None])
def test_intensity_field_names(name):
    points = RNG.normal(size=(5, 4)).astype(np.float32)
    names = ["x", "y", "z"] + ([name] if name else [])
    fields = [PointField(n, 4 * k, 7) for k, n in enumerate(names)]
    data = np.ascontiguousarray(points[:, : len(names)]).tobytes()
    out = cloud_to_xyzi(fields, 1, 5, 4 * len(names), 4 * len(names) * 5, data)
    np.testing.assert_array_equal(out[:, :3], points[:, :3])
    np.testing.assert_array_equal(out[:, 3], points[:, 3] if name else 0)


def test_float64_fields():
    points = RNG.normal(size=(5, 4))
    fields = [PointField(n, 8 * k, 8) for k, n in enumerate("xyz")] + [PointField("i", 24, 8)]
    out = cloud_to_xyzi(fields, 1, 5, 32, 160, points.tobytes())
    np.testing.assert_allclose(out, points.astype(np.float32))


def test_empty_cloud():
    assert cloud_to_xyzi(list(xyzi_to_cloud(np.zeros((0, 4)))[0]), 1, 0, 16, 0, b"").shape == (
        0,
        4,
    )


def test_bad_layouts_are_clear_errors():
    fields, _, data = xyzi_to_cloud(np.ones((2, 4), np.float32))
    with pytest.raises(PointCloudFormatError, match="big-endian"):
        cloud_to_xyzi(fields, 1, 2, 16, 32, data, is_bigendian=True)
    no_z = [PointField("x", 0, 7), PointField("y", 4, 7), PointField("intensity", 12, 7)]
    with pytest.raises(PointCloudFormatError, match=r"no z field \(fields: x, y, intensity\)"):
        cloud_to_xyzi(no_z, 1, 2, 16, 32, data)
    weird = [PointField("x", 0, 9), PointField("y", 4, 7), PointField("z", 8, 7)]
    with pytest.raises(PointCloudFormatError, match="'x' has unsupported datatype 9"):
        cloud_to_xyzi(weird, 1, 2, 16, 32, data)
    vector = [PointField("x", 0, 7, 3), PointField("y", 4, 7), PointField("z", 8, 7)]
    with pytest.raises(PointCloudFormatError, match="count 3"):
        cloud_to_xyzi(vector, 1, 2, 16, 32, data)


def test_inconsistent_buffers_are_corrupt():
    fields, _, data = xyzi_to_cloud(np.ones((2, 4), np.float32))
    with pytest.raises(CorruptCloudError, match="buffer too short"):
        cloud_to_xyzi(fields, 1, 3, 16, 48, data)
    with pytest.raises(CorruptCloudError, match="row_step 20 is smaller"):
        cloud_to_xyzi(fields, 1, 2, 16, 20, data)
    with pytest.raises(CorruptCloudError, match="does not fit in point_step 12"):
        cloud_to_xyzi(fields, 1, 2, 12, 32, data)
    with pytest.raises(CorruptCloudError, match="point_step 0"):
        cloud_to_xyzi(fields, 1, 2, 0, 32, data)
