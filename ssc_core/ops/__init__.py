"""ssc_core.ops."""
