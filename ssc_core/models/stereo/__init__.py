"""Stereo depth networks used as point sources (not SSC models: they are not in the model registry)."""
