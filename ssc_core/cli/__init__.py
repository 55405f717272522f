"""ssc_core.cli."""
