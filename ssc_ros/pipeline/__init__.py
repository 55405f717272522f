"""ROS-agnostic pipeline: synchronizer, temporal buffer, inference worker, output builders."""
