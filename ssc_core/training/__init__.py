"""ssc_core.training."""
