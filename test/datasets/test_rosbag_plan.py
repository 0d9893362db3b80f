"""The bag read plan and the pose-source choice: topic types + config -> plan, no bag needed."""

from __future__ import annotations

import logging

import pytest

from liploc_ros.datasets.rosbag_config import BagReaderConfig
from liploc_ros.datasets.rosbag_plan import (
    PoseSourceChoice,
    StreamPlan,
    choose_pose_source,
    plan_bag_read,
)
from liploc_ros.errors import DatasetError

IMG = "sensor_msgs/msg/Image"
JPEG = "sensor_msgs/msg/CompressedImage"
PC2 = "sensor_msgs/msg/PointCloud2"
INFO = "sensor_msgs/msg/CameraInfo"
TFM = "tf2_msgs/msg/TFMessage"
ODOM = "nav_msgs/msg/Odometry"
POSE = "geometry_msgs/msg/PoseStamped"

COLOR = "/kitti/camera_color_left/image_raw"
CLOUD = "/kitti/velo/pointcloud"
KITTI2BAG = {
    COLOR: IMG,
    "/kitti/camera_color_left/camera_info": INFO,
    "/kitti/camera_gray_left/image_raw": IMG,
    "/kitti/camera_gray_left/camera_info": INFO,
    CLOUD: PC2,
    "/tf": TFM,
    "/tf_static": TFM,
}


def plan(topics, **options):
    return plan_bag_read(topics, BagReaderConfig(**options), "test.bag")


def choose(topics, *, lidar="velo_link", drifting=False, **options):
    cfg = BagReaderConfig(**options)
    return choose_pose_source(topics, cfg, lidar_frame=lidar, drifting=drifting, where="b")


def test_kitti2bag_defaults_anchor_on_the_lidar_and_pair_the_colour_camera():
    p = plan(KITTI2BAG)
    assert (p.image_topic, p.image_type, p.points_topic, p.anchor) == (COLOR, IMG, CLOUD, "lidar")
    # two CameraInfo topics: the image topic's sibling
    assert p.camera_info_topic == "/kitti/camera_color_left/camera_info"
    assert p.tf_topics == {"/tf", "/tf_static"}
    assert p.pose_topics == frozenset()
    assert p.index_topics == {"/tf", "/tf_static", "/kitti/camera_color_left/camera_info"}
    assert p.stream(image=True, points=True) == StreamPlan(CLOUD, COLOR, True, True)
    assert p.stream(image=False, points=True) == StreamPlan(CLOUD, None, False, True)
    camera = plan(KITTI2BAG, anchor="camera")
    assert camera.stream(image=True, points=False) == StreamPlan(COLOR, None, True, False)


def test_a_bag_without_clouds_anchors_on_images_and_finds_topics_by_type():
    p = plan({"/cam/compressed": JPEG, "/cam/camera_info": INFO, "/odom": ODOM})
    assert (p.image_topic, p.image_type, p.points_topic) == ("/cam/compressed", JPEG, None)
    assert p.anchor == "camera"
    assert p.camera_info_topic == "/cam/camera_info"
    assert p.tf_topics == frozenset()
    assert p.pose_topics == {"/odom"}  # the odometry candidate (and the only pose topic)
    assert p.stream(image=True, points=True) == StreamPlan("/cam/compressed", None, True, False)
    with pytest.raises(DatasetError, match="anchor='lidar' needs a PointCloud2 topic"):
        plan({"/cam": IMG}, anchor="lidar")


def test_ambiguous_missing_and_mistyped_topics_are_errors_that_list_the_candidates():
    two = {"/a/image": IMG, "/b/image": IMG, "/points": PC2}
    with pytest.raises(DatasetError, match=r"several image topics.*image_topic=.*/a/image"):
        plan(two)
    assert plan(two, image_topic="/b/image").image_topic == "/b/image"
    with pytest.raises(DatasetError, match=r"test.bag: no topic '/c' \(image_topic\)"):
        plan(two, image_topic="/c")
    with pytest.raises(DatasetError, match=r"'/points' \(image_topic\) is sensor_msgs/msg/Point"):
        plan(two, image_topic="/points")
    with pytest.raises(DatasetError, match="no Image, CompressedImage or PointCloud2 topic"):
        plan({"/tf": TFM})
    with pytest.raises(DatasetError, match="camera_info_topic"):
        plan(two, image_topic="/a/image", camera_info_topic="/a/camera_info")


def test_pose_topics_to_read_follow_pose_and_odometry_sources():
    topics = {CLOUD: PC2, "/tf": TFM, "/odom": ODOM, "/ground_truth/odom": ODOM, "/gt": POSE}
    assert plan(topics).pose_topics == {"/odom", "/ground_truth/odom", "/gt"}
    assert plan(topics, pose_topic="/gt").pose_topics == {"/gt", "/odom"}
    assert plan(topics, pose_source="tf").pose_topics == {"/odom"}
    assert plan(topics, pose_source="none", odometry_source="none").pose_topics == frozenset()


def test_pose_source_auto_prefers_tf_unless_it_is_the_drifting_odometry():
    synth = {CLOUD: PC2, "/tf": TFM, "/odom": ODOM, "/ground_truth/odom": ODOM}
    assert choose(synth) == PoseSourceChoice("tf")
    # tf rooted at odom: the ground-truth topic, never the odometry topic
    assert choose(synth, drifting=True) == PoseSourceChoice("topic", "/ground_truth/odom")
    assert choose(synth, pose_topic="/odom") == PoseSourceChoice("topic", "/odom")
    # no LiDAR frame: the only pose topic
    assert choose({"/tf": TFM, "/gt": POSE}, lidar=None) == PoseSourceChoice("topic", "/gt")
    with pytest.raises(DatasetError, match=r"several pose topics.*pose_topic="):
        choose({"/gt": POSE, "/gt2": POSE, "/odom": ODOM}, lidar=None)


def test_pose_source_none_or_impossible(caplog):
    with caplog.at_level(logging.WARNING, logger="liploc_ros.datasets.rosbag_plan"):
        assert choose({CLOUD: PC2}) == PoseSourceChoice("none")
    assert "no /tf and no pose topic, so frames carry no pose" in caplog.text
    assert choose(KITTI2BAG, pose_source="none") == PoseSourceChoice("none")
    with pytest.raises(DatasetError, match="pose_source='tf' but there is no /tf topic"):
        choose({CLOUD: PC2}, pose_source="tf")
    with pytest.raises(DatasetError, match="pose_source='tf' needs the LiDAR frame"):
        choose(KITTI2BAG, pose_source="tf", lidar=None)
    with pytest.raises(DatasetError, match="pose_source='topic' but no Odometry"):
        choose(KITTI2BAG, pose_source="topic")
    with caplog.at_level(logging.WARNING, logger="liploc_ros.datasets.rosbag_plan"):
        assert choose(KITTI2BAG, pose_source="tf", drifting=True) == PoseSourceChoice("tf")
    assert "the poses drift" in caplog.text
