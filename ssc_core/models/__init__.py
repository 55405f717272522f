"""ssc_core.models."""
