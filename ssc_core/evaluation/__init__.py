"""ssc_core.evaluation."""
