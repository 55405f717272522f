"""ssc_core.inference."""
