"""Localize a camera in a LIP-Loc map with localizer_node.

    ros2 launch liploc_ros localize.launch.py map:=/maps/town.lmap \
        model:=/models/liploc.safetensors image_topic:=/camera/image_raw

Several cameras: image_topic:=/cam_front/image_raw,/cam_rear/image_raw/compressed (each
topic's type, Image or CompressedImage, is learned from its publisher). Replaying a bag with
`ros2 bag play --clock` (or `liploc play --clock`): add use_sim_time:=true.

``model`` defaults to the installed demo model (share/liploc_ros/models/
liploc_demo.safetensors); a relative model path that does not exist is looked up in
share/liploc_ros, so `model:=models/liploc_demo.safetensors` works from any directory;
`model:=''` keeps the parameter file's. Other arguments left empty keep the file's values;
everything else is set in the parameter file (`config:=my_localizer.yaml` for your own
copy). Without ROS 2 launch (a pip-only install), `liploc run-localizer` starts the same
node from the same file.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from liploc_ros.param_files import parameters_for

NODE_NAME = "localizer_node"
#: launch argument -> node parameter, passed only when the argument is not empty
_ARGUMENTS = {"map": "map_path", "model": "model", "device": "device"}


def _localizer_node(context, *args, **kwargs):
    overrides = {}
    for argument, parameter in _ARGUMENTS.items():
        value = LaunchConfiguration(argument).perform(context).strip()
        if value:
            overrides[parameter] = value
    topics = LaunchConfiguration("image_topic").perform(context)
    topics = [t.strip() for t in topics.split(",") if t.strip()]
    if topics:
        overrides["image_topics"] = topics
    sim_time = LaunchConfiguration("use_sim_time").perform(context).strip().lower()
    overrides["use_sim_time"] = sim_time in ("true", "1", "yes", "on")
    namespace = LaunchConfiguration("namespace").perform(context)
    config = LaunchConfiguration("config").perform(context)
    return [
        Node(
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
    ]


def generate_launch_description():
    default_config = PathJoinSubstitution(
        [FindPackageShare("liploc_ros"), "config", "localizer.yaml"]
    )
    demo_model = PathJoinSubstitution(
        [FindPackageShare("liploc_ros"), "models", "liploc_demo.safetensors"]
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument("map", default_value="", description="map database file"),
            DeclareLaunchArgument(
                "model",
                default_value=demo_model,
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
                "config", default_value=default_config, description="parameter file"
            ),
            DeclareLaunchArgument(
                "use_sim_time", default_value="false", description="use the /clock topic"
            ),
            DeclareLaunchArgument(
                "namespace", default_value="", description="namespace of the node"
            ),
            OpaqueFunction(function=_localizer_node),
        ]
    )
