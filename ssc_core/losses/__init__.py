"""ssc_core.losses."""
