"""Configs by name from an installed package (no source tree): ssc_ros installed the way colcon's ament_python
build does it (``setup.py ... install --prefix <install> --single-version-externally-managed``, the data files
going to ``<install>/share/ssc_ros``), then ``load_config("sgn_tiny")`` in a fresh interpreter that sees only the
install, with and without the ament index on AMENT_PREFIX_PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

SOURCES = ("setup.py", "setup.cfg", "README.md", "package.xml", "resource", "config", "launch", "rviz", "ssc_core",
           "ssc_ros")
PROBE = ("from ssc_core.config import load_config, resolve_config_path\n"
         "print(resolve_config_path('sgn_tiny'))\n"
         "print(load_config('sgn_tiny')['model']['name'])\n")


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Path:
    """<tmp>/install: ssc_ros as colcon's ament_python build installs it, from a copy of the sources."""
    root = tmp_path_factory.mktemp("colcon")
    src, build = root / "src", root / "build"
    build.mkdir()
    src.mkdir()
    for name in SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO_ROOT / name, src / name)
    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(build), "build", "--build-base",
                    str(build / "build"), "install", "--prefix", str(root / "install"), "--record",
                    str(build / "install.log"), "--single-version-externally-managed"],
                   cwd=src, check=True, capture_output=True)
    return root / "install"


def site_packages(prefix: Path) -> Path:
    return prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def probe(site: Path, cwd: Path, ament_prefix_path: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH")}
    env["PYTHONPATH"] = str(site)
    if ament_prefix_path is not None:
        env["AMENT_PREFIX_PATH"] = ament_prefix_path
    return subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True)


def test_the_install_lays_out_package_configs_and_the_ament_index(install):
    assert (site_packages(install) / "ssc_core" / "config.py").is_file()
    assert (install / "share" / "ssc_ros" / "config" / "models" / "sgn_tiny.yaml").is_file()
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "ssc_ros").is_file()


@pytest.mark.parametrize("sourced", [True, False], ids=["ament_index", "beside_the_package"])
def test_a_config_is_found_by_name_in_a_colcon_install(install, tmp_path, sourced):
    result = probe(site_packages(install), tmp_path, str(install) if sourced else None)
    assert result.returncode == 0, result.stderr
    path, model = result.stdout.split()
    assert Path(path) == install / "share" / "ssc_ros" / "config" / "models" / "sgn_tiny.yaml"
    assert model == "sgn"


def test_the_ament_index_finds_configs_in_another_prefix(install, tmp_path):
    """Package and share/ in different prefixes: only the ament index can tell where the configs are."""
    elsewhere = tmp_path / "pkg"
    shutil.copytree(site_packages(install) / "ssc_core", site_packages(elsewhere) / "ssc_core")
    shutil.copytree(site_packages(install) / "ssc_ros", site_packages(elsewhere) / "ssc_ros")
    found = probe(site_packages(elsewhere), tmp_path, os.pathsep.join([str(tmp_path / "nothing"), str(install)]))
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.split()[0]).is_relative_to(install)
    lost = probe(site_packages(elsewhere), tmp_path, None)
    assert lost.returncode != 0 and "config 'sgn_tiny' not found" in lost.stderr
