"""`liploc eval --mode`: the query drive localized in both modes, with the same figures."""

from __future__ import annotations

import json

import pytest
from mapping_helpers import tiny_model

from liploc_ros.cli import main
from liploc_ros.model import save_model

KEYS = (
    "mode", "frames", "fix_ratio", "fix_precision_20m", "fix_precision_5m", "median_error_m",
    "p95_error_m", "median_yaw_error_deg", "first_fix_distance_m", "recall_at_1",
)  # fmt: skip


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval_modes") / "tiny.safetensors"
    save_model(path, tiny_model(3).model)
    return path


@pytest.mark.parametrize("mode", ["single", "sequence"])
def test_eval_mode_writes_the_localization_figures(model, tmp_path, mode):
    out = tmp_path / mode
    code = main(["eval", "--model", str(model), "--map", "synthetic:6:0:40",
                 "--queries", "synthetic:6:1:40", "--mode", mode, "--out", str(out),
                 "--workers", "0", "--no-progress", "--json"])  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert all(k in summary for k in KEYS), sorted(set(KEYS) - set(summary))
    assert summary["mode"] == mode
    assert summary["frames"] == summary["num_queries"] == 40
    # the localization's single-frame top-1 is the evaluation's own Recall@1
    assert summary["recall_at_1"] == pytest.approx(summary["recall@1"])
    assert summary["odometry"] == ("yes" if mode == "sequence" else None)


def test_same_sequence_eval_has_no_query_drive_to_localize(model, tmp_path, capsys):
    code = main(["eval", "--model", str(model), "--map", "synthetic:6:0:20",
                 "--mode", "sequence", "--workers", "0", "--no-progress"])  # fmt: skip
    assert code == 0  # same-sequence protocol: no query drive, nothing to localize
    assert "mode:" not in capsys.readouterr().out


def test_eval_with_headings_builds_one_entry_per_scan_and_crop(model, tmp_path):
    import numpy as np

    runs = {}
    for name, headings in (("forward", "1"), ("both", "0,180")):
        out = tmp_path / name
        code = main(["eval", "--model", str(model), "--map", "synthetic:6:0:30",
                     "--queries", "synthetic:6:3:30", "--headings", headings, "--mode",
                     "sequence", "--out", str(out), "--workers", "0", "--no-progress",
                     "--json"])  # fmt: skip
        assert code == 0
        runs[name] = (json.loads((out / "summary.json").read_text()), np.load(out / "results.npz"))
    (fwd, fwd_npz), (both, both_npz) = runs["forward"], runs["both"]
    assert fwd["headings_deg"] == [0.0]
    assert both["headings_deg"] == [0.0, 180.0]
    assert both["num_keyframes"] == fwd["num_keyframes"] == fwd["num_database"] == 30
    assert both["num_database"] == 60
    np.testing.assert_array_equal(both_npz["db_heading_deg"], np.tile([0.0, 180.0], 30))
    np.testing.assert_array_equal(both_npz["db_frame"], np.repeat(fwd_npz["db_frame"], 2))
    # the forward crops are the forward-only map's entries; the rear crops are other pictures
    np.testing.assert_allclose(both_npz["lidar"][0::2], fwd_npz["lidar"], atol=1e-5)
    assert not np.allclose(both_npz["lidar"][1::2], fwd_npz["lidar"], atol=1e-3)
    # Recall@K counts distinct scans: never both crops of one scan in the top K
    top = both_npz["topk_db_frame"]
    assert all(len(set(row)) == len(row) for row in top)
    assert both["recall_at_1"] == pytest.approx(both["recall@1"])


@pytest.mark.parametrize("bad", ["0,360", "abc", "0,0"])
def test_eval_rejects_bad_headings(model, bad, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--model", str(model), "--map", "synthetic:6:0:5", "--headings", bad])
    assert exc.value.code == 2
    assert "headings" in capsys.readouterr().err
