"""models/liploc_demo.safetensors: present, small, what its card says, and better than chance
on a town it never saw (an untrained model of the same shape is at chance there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liploc_ros.cli import main
from liploc_ros.cli.demo import DEFAULT_SEED, DEMO_MODEL
from liploc_ros.model import load_model

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / DEMO_MODEL


def test_the_demo_model_is_shipped_small_and_trained_without_the_demo_town():
    assert MODEL.is_file(), "models/liploc_demo.safetensors is missing"
    assert MODEL.stat().st_size <= 20_000_000
    loaded = load_model(MODEL)  # verifies the checksum and the fingerprint
    info = loaded.metadata["training"]
    seeds = {int(spec.split(":")[1]) for spec in info["train_sources"]}
    assert DEFAULT_SEED not in seeds
    assert not seeds & {0, 1, 2}  # the towns its Recall@1 is reported on
    assert loaded.fingerprint in (ROOT / "models" / "README.md").read_text()


@pytest.mark.slow
def test_the_demo_model_localizes_an_unseen_town_far_above_chance(capsys):
    spec = f"synthetic:{DEFAULT_SEED}:{{}}:120"
    argv = ["eval", "--model", str(MODEL), "--map", spec.format(0), "--queries",
            spec.format(1), "--json", "--no-progress", "--workers", "0"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_queries"] == 120
    # 120 frames are ~120 m: chance at 20 m is about 0.3
    assert summary["recall@1"] >= summary["chance@1"] + 0.25, summary
