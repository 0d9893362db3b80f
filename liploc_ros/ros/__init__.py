"""The ROS 2 layer: the only part of liploc_ros that imports rclpy.

- :mod:`~liploc_ros.ros.conversions`: messages <-> numpy (scans, images, poses, stamps)
- :mod:`~liploc_ros.ros.params`: ROS parameters <-> the package's typed configs
- :mod:`~liploc_ros.ros.pose_sources`: a scan's pose from tf2 or a pose topic
- :mod:`~liploc_ros.ros.live_map`: live map building off the executor (no rclpy)
- :mod:`~liploc_ros.ros.spin`: spin until SIGINT / SIGTERM with ROS still up afterwards
- :mod:`~liploc_ros.ros.map_builder_node`: the ``map_builder_node`` executable

Modules are not imported here, so ``import liploc_ros.ros.live_map`` works without ROS.
"""
