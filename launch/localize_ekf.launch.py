"""Localize a camera in a LIP-Loc map and fuse the fixes with wheel odometry in
robot_localization's EKF.

    ros2 launch liploc_ros localize_ekf.launch.py map:=/maps/town.lmap \
        image_topic:=/camera/image_raw odom_topic:=/wheel/odometry

Starts localizer_node (as localize.launch.py does, with the same arguments) and
robot_localization's ekf_node as ``ekf_filter_node`` with config/ekf_liploc.yaml: wheel
odometry (``odom_topic``, nav_msgs/Odometry) as velocity, the localizer's ``~/pose`` as an
absolute x, y, yaw in ``map``. The EKF (world_frame map) publishes tf map -> odom, so the
localizer runs with ``publish_tf: false``; odom -> base_link must come from the wheel driver
(or an odom-frame EKF). The fused pose is on ``odometry/global`` (robot_localization's
``odometry/filtered``, renamed as its own map-frame examples do).

``odom_topic`` is the wheel odometry, never the EKF's output (the localizer would then read
back its own fixes): it becomes the EKF's odom0 and the localizer's ``odom_topic`` (used by
``odometry_source: topic``; where tf2_ros is installed ``auto`` reads odom -> base_link from tf,
the same odometry). ``ekf_set_pose:=true`` (default) sends the localizer's first confident
fix, and the first after each ``~/relocalize``, to the EKF's ``set_pose``, so that the EKF
starts where the camera is instead of at the map's origin and follows a relocalization that
its outlier test would otherwise refuse. ``ekf_config:=my_ekf.yaml`` for your own copy; with
``namespace:=car1`` both nodes run under /car1 and the file's sections are applied to them.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from liploc_ros.param_files import parameters_for

NODE_NAME = "localizer_node"
EKF_NAME = "ekf_filter_node"
#: launch argument -> localizer parameter, passed only when the argument is not empty
_ARGUMENTS = {"map": "map_path", "model": "model", "device": "device", "odom_topic": "odom_topic"}
_TRUE = ("true", "1", "yes", "on")


def _topic(namespace: str, name: str) -> str:
    """The absolute name of ``name`` (relative to ``namespace``), as both nodes resolve it."""
    parts = [p for p in namespace.strip("/").split("/") if p]
    return "/" + "/".join([*parts, name.strip("/")])


def _flag(context, name: str) -> bool:
    return LaunchConfiguration(name).perform(context).strip().lower() in _TRUE


def _nodes(context, *args, **kwargs):
    namespace = LaunchConfiguration("namespace").perform(context)
    sim_time = _flag(context, "use_sim_time")
    overrides = {}
    for argument, parameter in _ARGUMENTS.items():
        value = LaunchConfiguration(argument).perform(context).strip()
        if value:
            overrides[parameter] = value
    topics = LaunchConfiguration("image_topic").perform(context)
    topics = [t.strip() for t in topics.split(",") if t.strip()]
    if topics:
        overrides["image_topics"] = topics
    overrides["use_sim_time"] = sim_time
    # the EKF owns map -> odom: a second publisher would give `odom` two parents in tf
    overrides["publish_tf"] = False
    if _flag(context, "ekf_set_pose"):
        overrides["publish_initialpose"] = True
        overrides["initialpose_topic"] = _topic(namespace, "set_pose")
    config = LaunchConfiguration("config").perform(context)
    localizer = Node(
        package="liploc_ros",
        executable="localizer_node",
        name=NODE_NAME,
        namespace=namespace,
        parameters=[parameters_for(config, NODE_NAME, namespace), overrides],
        output="screen",
        emulate_tty=True,
        # a fatal start-up error (missing map, mismatched model) ends the launch
        on_exit=Shutdown(),
    )

    ekf_overrides = {"pose0": _topic(namespace, f"{NODE_NAME}/pose"), "use_sim_time": sim_time}
    if "odom_topic" in overrides:
        ekf_overrides["odom0"] = overrides["odom_topic"]
    ekf_config = LaunchConfiguration("ekf_config").perform(context)
    ekf = Node(
        package="robot_localization",
        executable="ekf_node",
        name=EKF_NAME,
        namespace=namespace,
        parameters=[parameters_for(ekf_config, EKF_NAME, namespace), ekf_overrides],
        remappings=[("odometry/filtered", "odometry/global")],
        output="screen",
        # without the filter nothing publishes map -> odom: end the launch rather than limp on
        on_exit=Shutdown(),
    )
    return [localizer, ekf]


def generate_launch_description():
    share = FindPackageShare("liploc_ros")
    return LaunchDescription(
        [
            DeclareLaunchArgument("map", default_value="", description="map database file"),
            DeclareLaunchArgument(
                "model",
                default_value=PathJoinSubstitution([share, "models", "liploc_demo.safetensors"]),
                description="the map's model file (.safetensors or .pth; default: the shipped "
                "demo model; '': the parameter file's)",
            ),
            DeclareLaunchArgument(
                "image_topic",
                default_value="",
                description="camera topic(s), comma-separated; Image or CompressedImage",
            ),
            DeclareLaunchArgument(
                "device", default_value="", description="auto, cpu, cuda or cuda:N"
            ),
            DeclareLaunchArgument(
                "config",
                default_value=PathJoinSubstitution([share, "config", "localizer.yaml"]),
                description="localizer_node's parameter file",
            ),
            DeclareLaunchArgument(
                "use_sim_time", default_value="false", description="use the /clock topic"
            ),
            DeclareLaunchArgument(
                "namespace", default_value="", description="namespace of both nodes"
            ),
            DeclareLaunchArgument(
                "odom_topic",
                default_value="/odom",
                description="wheel odometry (nav_msgs/Odometry of base_link in odom): the "
                "EKF's odom0 and the localizer's odom_topic; '': the files' values",
            ),
            DeclareLaunchArgument(
                "ekf_config",
                default_value=PathJoinSubstitution([share, "config", "ekf_liploc.yaml"]),
                description="robot_localization ekf_node parameter file",
            ),
            DeclareLaunchArgument(
                "ekf_set_pose",
                default_value="true",
                description="send the localizer's first confident fix (and the first after "
                "~/relocalize) to the EKF's set_pose",
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
