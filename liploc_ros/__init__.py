"""liploc_ros: LIP-Loc camera-in-LiDAR-map localization for ROS 2.

The core (everything outside ``liploc_ros.ros``) is plain Python with no ROS dependency.
"""

__version__ = "0.1.0"
