"""Stand-in for tf2_msgs (tests only; see ../README.md)."""
