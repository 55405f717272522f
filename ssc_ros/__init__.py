"""ssc_ros: ROS 2 face of ssc_core. The pipeline package is ROS-agnostic; node modules import rclpy."""
