"""Packaging for ssc_ros: a plain pip package (ssc_core + the ROS-agnostic parts of ssc_ros) and an
ament_python ROS 2 package (the same setup.py is what colcon runs)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "ssc_ros"

setup(
    name=package_name,
    version="0.1.0",
    description=("3D semantic scene completion (SGN, HTCL, VoxFormer + HASSC, L2COcc, CleanerS) for ROS 2 and "
                 "offline use"),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
        ("share/" + package_name + "/config/models", glob("config/models/*.yaml")),
        ("share/" + package_name + "/config/data", glob("config/data/*.yaml")),
        ("share/" + package_name + "/rviz", glob("rviz/*.rviz")),
    ],
    install_requires=[
        # torch is deliberately open-ended at the top: GPU users bring the build they need (README, "Set-up");
        # torchvision must be the release made for that torch. The floor is torch 2.5: the checkpoint reader uses
        # torch.serialization.safe_globals / get_unsafe_globals_in_checkpoint (2.5), the deformable conv
        # torch.is_autocast_enabled(device) (2.4), the Trainer torch.amp.GradScaler(device) (2.3).
        # timm builds every image backbone: pvt_v2 (CleanerS's MiT-B2) has forward_intermediates from 1.0.16 and
        # Swin builds on the meta device (parameter counts, bench/model_cost.py) from 1.0.21 (checked against the
        # 1.0.15/1.0.16/1.0.20/1.0.21 wheels).
        "torch>=2.5",
        "torchvision>=0.20",
        "timm>=1.0.21,<2",
        "numpy>=1.23",
        "pyyaml>=5.4",
        "tqdm>=4.60",
        "pillow>=9.0",
        "matplotlib>=3.5",
        # cv_bridge of ROS 2 Jazzy is built against OpenCV 4; cv2 5.x in the same interpreter breaks it.
        "opencv-python-headless>=4.5,<5",
        "rosbags>=0.10.9",
        "scipy>=1.8",
        "tensorboard>=2.10",
    ],
    extras_require={
        # spconv: the CPU build from PyPI; GPU users install spconv-cu118 / spconv-cu120 / ... instead.
        "sparse": ["spconv>=2.3"],
        "test": ["pytest>=7", "ruff>=0.5"],
        # ROS 2 Kilted as PyPI wheels: the real rclpy + message packages (Fast DDS), so the node tests run without
        # a ROS install (CI, in a venv of their own). Not for a machine with a sourced ROS 2: they would shadow it.
        "ros-wheels": [
            "ros-rclpy", "ros-rmw-fastrtps-cpp", "ros-std-msgs", "ros-builtin-interfaces", "ros-rosgraph-msgs",
            "ros-geometry-msgs", "ros-sensor-msgs", "ros-nav-msgs", "ros-visualization-msgs", "ros-diagnostic-msgs",
        ],
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "ssc-train = ssc_core.cli.train:main",
            "ssc-eval = ssc_core.cli.evaluate:main",
            "ssc-infer = ssc_core.cli.infer:main",
            "ssc-make-synthetic = ssc_core.cli.make_synthetic:main",
            "ssc-demo = ssc_core.cli.demo:main",
            "ssc-bag = ssc_core.cli.bag:main",
            "ssc-precompute = ssc_core.cli.precompute:main",
            "ssc-import-checkpoint = ssc_core.cli.import_checkpoint:main",
            "ssc-precompute-depth = ssc_core.cli.precompute_depth:main",
            "ssc_node = ssc_ros.ssc_node:main",
            "kitti_replay_node = ssc_ros.kitti_replay_node:main",
        ],
    },
)
