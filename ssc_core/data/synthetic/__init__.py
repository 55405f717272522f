"""A procedural, seeded street world observed by a simulated KITTI car and written as a complete
SemanticKITTI sequence (see docs/synthetic.md).

Quick use::

    from ssc_core.data.synthetic import SyntheticOptions, generate_sequence
    paths = generate_sequence("/tmp/synth", sequence="08", frames=20, seed=0, options=SyntheticOptions.small())

Modules: options (SyntheticOptions, calibration), street (centreline, ground bands), primitives (solids and
ray intersection), world (templates, layout, movers), raycast (ray grids), lidar, camera, texture, voxels
(voxelizer-style labels), trajectory (ego path), generate (the sequence writer).
"""

from ssc_core.data.synthetic.generate import SyntheticScene, generate_sequence
from ssc_core.data.synthetic.options import SyntheticOptions, default_calib

__all__ = ["SyntheticOptions", "SyntheticScene", "default_calib", "generate_sequence"]
