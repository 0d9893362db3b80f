"""A seeded synthetic driving world seen by a KITTI-like camera + LiDAR rig.

A procedurally generated town (streets with turns and T-junctions, buildings with varied
footprints, setbacks, heights, colours and windows, trees, lamps, signs, parked cars, lane
markings) is driven several times along one route. Both sensors are rendered from the same
2.5D geometry by column ray casting in numpy, so a camera image and the scan of the same
place share the structure a cross-modal model can learn.

    drive = make_drive(seed=3, traversal=0, frames=300)   # an IndexedSource
    frame = drive[10]                                      # image, points, pose, stamp
"""

from liploc_ros.datasets.synthetic.camera import CameraRender, PinholeCamera
from liploc_ros.datasets.synthetic.config import RigConfig, TownConfig, TraversalConfig
from liploc_ros.datasets.synthetic.drive import SyntheticDrive, make_drive, rig_calibration
from liploc_ros.datasets.synthetic.lidar import LidarModel, LidarRender, ScanWindow
from liploc_ros.datasets.synthetic.materials import Material
from liploc_ros.datasets.synthetic.town import Town, make_town
from liploc_ros.datasets.synthetic.traversals import default_traversal

__all__ = [
    "CameraRender",
    "LidarModel",
    "LidarRender",
    "Material",
    "PinholeCamera",
    "RigConfig",
    "ScanWindow",
    "SyntheticDrive",
    "Town",
    "TownConfig",
    "TraversalConfig",
    "default_traversal",
    "make_drive",
    "make_town",
    "rig_calibration",
]
