"""ssc_core.models/blocks."""
