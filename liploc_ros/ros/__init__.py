"""The ROS 2 layer: the only part of liploc_ros that imports rclpy.

Nodes and what they run:

- :mod:`~liploc_ros.ros.localizer_node`: the ``localizer_node`` executable
- :mod:`~liploc_ros.ros.map_builder_node`: the ``map_builder_node`` executable
- :mod:`~liploc_ros.ros.bag_player`: ``liploc play``, a bag published in real time
- :mod:`~liploc_ros.ros.demo_session`: ``liploc demo``'s live part (node, player, collector)
- :mod:`~liploc_ros.ros.demo_report`: the demo's figures against the bag's ground truth

Parameters and messages:

- :mod:`~liploc_ros.ros.params`: ROS parameters <-> the package's typed configs
- :mod:`~liploc_ros.ros.localizer_params`, :mod:`~liploc_ros.ros.map_builder_params`: each
  node's parameters as one typed config
- :mod:`~liploc_ros.ros.conversions`: messages <-> numpy (scans, images, poses, stamps)
- :mod:`~liploc_ros.ros.image_input`: camera messages -> RGB, bad input sorted by cause
- :mod:`~liploc_ros.ros.localizer_messages`: poses, markers and diagnostics from numpy

The pieces the nodes are made of:

- :mod:`~liploc_ros.ros.frame_slots`: newest-frame slots, so a slow model drops frames
- :mod:`~liploc_ros.ros.throttle`: warnings rate-limited per cause
- :mod:`~liploc_ros.ros.localizer_stats`: rate, latency and score windows for /diagnostics
- :mod:`~liploc_ros.ros.lifecycle`: what both managed nodes share (parameters settable
  while unconfigured, entities a configure made, autostart)
- :mod:`~liploc_ros.ros.localizer_runtime`: what the localizer node holds while configured
  (model, map, publishers, the worker) and does while active
- :mod:`~liploc_ros.ros.localizer_requests`: its services (ours and AMCL's) and request topics
- :mod:`~liploc_ros.ros.initialpose_input`: an operator's initial pose checked, in the map
  frame, told apart from the node's own /initialpose output
- :mod:`~liploc_ros.ros.localizer_setup`: what the localizer node loads (open_localizer)
- :mod:`~liploc_ros.ros.odometry_input`: sequence mode's odometry (tf or an Odometry topic)
- :mod:`~liploc_ros.ros.tracking_session`: sequence mode in the node (re-localize, status)
- :mod:`~liploc_ros.ros.map_odom_tf`: map -> odom from a global fix (where tf2 is installed)
- :mod:`~liploc_ros.ros.pose_sources`: a scan's pose from tf2 or a pose topic
- :mod:`~liploc_ros.ros.live_map`: live map building off the executor (no rclpy)
- :mod:`~liploc_ros.ros.spin`: spin until SIGINT / SIGTERM with ROS still up afterwards

Modules are not imported here, so ``import liploc_ros.ros.live_map`` works without ROS.
"""
