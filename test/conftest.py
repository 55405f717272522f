"""Shared pytest fixtures: keep torch small on CI's 2 cores and point at ../shared data when present."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

try:
    import torch

    torch.set_num_threads(2)
except ImportError:  # pragma: no cover - torch is a hard dependency; this only keeps collection readable
    pass


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (real KITTI calibrations, trajectories and one real frame); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present beside the checkout")
    return SHARED_DATA


@pytest.fixture
def one_thread():
    """One torch thread for the test: on a shared 2-core machine two OpenMP threads wait on each other and loops
    of small ops run several times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def htcl_street(tmp_path_factory) -> Path:
    """The small synthetic street of htcl_street.py (written once per session): the dataset root."""
    from htcl_street import write_street

    return write_street(tmp_path_factory.mktemp("htcl_street"))


@pytest.fixture(scope="session")
def synthetic_nyu_root(tmp_path_factory) -> Path:
    """Synthetic NYU rooms written once per session (ssc-make-synthetic --layout nyu --small): training rooms 0001,
    0002 and test room 0003 of seed 3 under <root>/NYU and <root>/NYUCAD."""
    from ssc_core.data.synthetic.indoor import IndoorOptions
    from ssc_core.data.synthetic.nyu_writer import generate_nyu

    root = tmp_path_factory.mktemp("synthetic_nyu")
    generate_nyu(root, frames=2, seed=3, test_frames=1, options=IndoorOptions(subdivision=2))
    return root
