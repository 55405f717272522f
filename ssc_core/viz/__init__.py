"""ssc_core.viz."""
