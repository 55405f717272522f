"""ssc_core: semantic scene completion in pure Python + PyTorch (no ROS imports anywhere in here)."""

__version__ = "0.1.0"
