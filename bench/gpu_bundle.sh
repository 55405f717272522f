#!/usr/bin/env bash
# Build, on a machine with PyPI access, the spconv bundle that bench/gpu_session.sh unpacks on a GPU machine
# that has no registry (the lent H200: Python 3.12, torch with CUDA 13, no spconv).
#
#   bash bench/gpu_bundle.sh            # -> .gpu/spconv_cu124_py312.tar.xz (~45 MB, ~3 min of xz)
#
# The spconv CUDA wheels are 70-76 MB each, over the 64 MiB a device call may carry, so the wheels are unpacked
# and recompressed with xz. Only the packages the GPU image lacks are bundled (spconv, cumm and their pure-Python
# helpers); numpy, pybind11, ninja, sympy and requests are already there. The folder .gpu/ is git-ignored
# locally (.git/info/exclude), so it travels only when named in the device call's carry list.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(spconv-cu124==2.3.8 cumm-cu124==0.7.11 ccimport==0.4.4 pccm==0.4.16 fire==0.7.1 lark==1.3.1 termcolor==3.3.0)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$stage/wheels" "${PACKAGES[@]}"
mkdir -p "$stage/site" .gpu
for wheel in "$stage"/wheels/*.whl; do
    python3 -m zipfile -e "$wheel" "$stage/site"
done
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >> "$exclude"
tar -cJf .gpu/spconv_cu124_py312.tar.xz -C "$stage/site" .
ls -l .gpu/spconv_cu124_py312.tar.xz
