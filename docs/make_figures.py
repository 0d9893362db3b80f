"""Regenerate the README's figures: ``.venv/bin/python docs/make_figures.py``."""

from pathlib import Path

from liploc_ros.datasets.synthetic import make_drive
from liploc_ros.preprocess import RangeImageConfig, range_image
from liploc_ros.viz import save_pair_figure

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    drive = make_drive(seed=0, traversal=0, frames=120)
    frame = drive[100]
    path = save_pair_figure(
        frame.image,
        range_image(frame.points, RangeImageConfig()),
        HERE / "synthetic_pair.png",
        title=f"{drive.name}, frame 100: synthetic camera (414 x 125)",
    )
    print(path)
