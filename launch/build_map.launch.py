"""Build a LIP-Loc map database with map_builder_node.

Offline, from a bag (the node builds the map, saves it and exits; launch ends with it):

    ros2 launch liploc_ros build_map.launch.py bag:=/data/run1 \
        model:=/models/liploc.safetensors map:=/maps/run1.lmap

Live, from a PointCloud2 topic and tf (or an odometry topic, see config/map_builder.yaml);
the map is saved on `ros2 service call /map_builder_node/save std_srvs/srv/Trigger` and when
the launch is stopped (Ctrl-C):

    ros2 launch liploc_ros build_map.launch.py model:=... map:=... use_sim_time:=true

``model`` defaults to the installed demo model (share/liploc_ros/models/
liploc_demo.safetensors); a relative model path that does not exist is looked up in
share/liploc_ros; `model:=''` keeps the parameter file's. Other arguments left empty keep
the file's values; everything else is set in the parameter file
(`config:=my_map_builder.yaml` for your own copy).
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from liploc_ros.param_files import parameters_for

NODE_NAME = "map_builder_node"
#: launch argument -> node parameter, passed only when the argument is not empty
_PATH_ARGUMENTS = {"bag": "bag_path", "model": "model", "map": "map_path"}


def _map_builder_node(context, *args, **kwargs):
    overrides = {}
    for argument, parameter in _PATH_ARGUMENTS.items():
        value = LaunchConfiguration(argument).perform(context).strip()
        if value:
            overrides[parameter] = value
    sim_time = LaunchConfiguration("use_sim_time").perform(context).strip().lower()
    overrides["use_sim_time"] = sim_time in ("true", "1", "yes", "on")
    namespace = LaunchConfiguration("namespace").perform(context)
    config = LaunchConfiguration("config").perform(context)
    return [
        Node(
            package="liploc_ros",
            executable="map_builder_node",
            name=NODE_NAME,
            namespace=namespace,
            parameters=[parameters_for(config, NODE_NAME, namespace), overrides],
            output="screen",
            emulate_tty=True,
            # offline mode exits when the map is saved; a failed node ends the launch too
            on_exit=Shutdown(),
        )
    ]


def generate_launch_description():
    default_config = PathJoinSubstitution(
        [FindPackageShare("liploc_ros"), "config", "map_builder.yaml"]
    )
    demo_model = PathJoinSubstitution(
        [FindPackageShare("liploc_ros"), "models", "liploc_demo.safetensors"]
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "bag", default_value="", description="bag to build the map from (offline mode)"
            ),
            DeclareLaunchArgument(
                "model",
                default_value=demo_model,
                description="liploc model file (.safetensors or .pth; default: the shipped "
                "demo model; '': the parameter file's)",
            ),
            DeclareLaunchArgument("map", default_value="", description="map file to write"),
            DeclareLaunchArgument(
                "config", default_value=default_config, description="parameter file"
            ),
            DeclareLaunchArgument(
                "use_sim_time", default_value="false", description="use the /clock topic"
            ),
            DeclareLaunchArgument(
                "namespace", default_value="", description="namespace of the node"
            ),
            OpaqueFunction(function=_map_builder_node),
        ]
    )
