"""HTCL test helpers (not a test module): the reduced HTCL config and the small synthetic street it runs on, shared
by test_htcl.py and test_htcl_live.py through conftest's ``htcl_street`` fixture."""

from __future__ import annotations

from pathlib import Path

from ssc_core.config import load_config
from ssc_core.data.synthetic.generate import generate_sequence
from ssc_core.data.synthetic.options import SyntheticOptions

SMALL_GRID = {"dims": [32, 32, 8], "voxel_size": 1.6, "origin": [0.0, -25.6, -2.0]}
SMALL_MODEL = {"depth": {"bins": [2.0, 50.0, 4.0]}, "stereo": {"disparities": 8}}


def small_config(**model) -> dict:
    """htcl_tiny shrunk to the 32 x 32 x 8 grid of 1.6 m, 64 x 160 images and 12 depth bins."""
    return load_config("htcl_tiny", {"data": {"grid": SMALL_GRID, "image_crop": [64, 160]},
                                      "model": {**SMALL_MODEL, **model}})


def write_street(root: Path) -> Path:
    """A 16-frame synthetic street (labels on frames 0, 5, 10, 15) at the small test sizes: sequence 00 of
    ``root``. Returns ``root``."""
    options = SyntheticOptions.small(image_size=(160, 64), grid_dims=(32, 32, 8), voxel_size=1.6, label_scans=6,
                                     azimuth_step_deg=1.0, lidar_beams=32)
    generate_sequence(root, "00", frames=16, seed=2, options=options)
    return root
