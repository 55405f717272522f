"""Geometry: SE(3) helpers, camera projection and FOV masks, voxelization, depth -> points."""
