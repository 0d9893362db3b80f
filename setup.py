"""liploc_ros: an ament_python package that also installs with plain pip (no ROS needed)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "liploc_ros"

# Run-time dependencies for a pip install. On a ROS machine, colcon does not install these:
# rosdep resolves package.xml and the README says how to add timm and faiss.
install_requires = [
    "numpy>=1.24",
    "scipy>=1.10",
    "pyyaml>=6",
    "torch>=2.1",
    "timm>=1.0",
    "safetensors>=0.4",
    "opencv-python-headless>=4.8",
    "faiss-cpu>=1.8",
    "rosbags>=0.10",
    "tqdm>=4.60",
    "matplotlib>=3.7",
]

# The ROS 2 client library and messages as PyPI wheels, for machines without a ROS install.
ros_wheels = [
    "ros-jazzy-rclpy[fastrtps]",
    "ros-jazzy-sensor-msgs",
    "ros-jazzy-geometry-msgs",
    "ros-jazzy-nav-msgs",
    "ros-jazzy-std-msgs",
    "ros-jazzy-std-srvs",
    "ros-jazzy-visualization-msgs",
    "ros-jazzy-diagnostic-msgs",
]

# Optional inference backends (liploc_ros.model.backends) and exporters (liploc export).
# ONNX Runtime on CUDA: install onnxruntime-gpu instead of onnxruntime; TensorRT engines
# (liploc export --format tensorrt): tensorrt-cu12 / tensorrt-cu13 on a GPU machine.
# NNCF quantizes OpenVINO encoders to INT8 (liploc export --precision int8, backend auto); it
# brings scikit-learn, ninja, pydot, rich, psutil, tabulate, joblib and a few small pure-Python
# packages: about 65 MB, 5 s to install.
openvino_wheels = ["openvino>=2024.4", "nncf>=2.14"]
onnx_wheels = ["onnxruntime>=1.18", "onnx>=1.16", "onnxscript>=0.2"]

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    # PEP 561: the package's annotations are for its users' type checkers too
    package_data={package_name: ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.launch.py")),
        # parameter files (ours and robot_localization's ekf_node's) and the RViz layout
        (f"share/{package_name}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        (f"share/{package_name}/models", glob("models/*.safetensors") + glob("models/*.md")),
    ],
    install_requires=install_requires,
    extras_require={
        "ros": ros_wheels,
        "tensorboard": ["tensorboard>=2.12"],
        "openvino": openvino_wheels,
        "onnx": onnx_wheels,
        # the backends too (about 370 MB, 15 s to install), so that their tests run in CI
        "dev": [
            "pytest>=7",
            "ruff>=0.6",
            "mypy>=2.4",  # setup.cfg [mypy]; test/test_package.py runs it
            "tensorboard>=2.12",
            *openvino_wheels,
            *onnx_wheels,
        ],
    },
    python_requires=">=3.10",
    zip_safe=True,
    maintainer="liploc_ros maintainers",
    maintainer_email="liploc-ros@example.com",
    description="LIP-Loc: camera localization in a prebuilt LiDAR map for ROS 2.",
    license="MIT",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "liploc = liploc_ros.cli:main",
            "map_builder_node = liploc_ros.ros.map_builder_node:main",
            "localizer_node = liploc_ros.ros.localizer_node:main",
        ],
    },
)
