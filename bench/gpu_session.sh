#!/usr/bin/env bash
# Every check that needs a GPU, in one go (about 5-10 minutes on one H200):
#   1. the CUDA tests: test/test_gpu.py (SGN on CUDA = CPU, the Trainer under bf16/fp16/fp32 AMP on CUDA,
#      DDP over NCCL when there are two GPUs), test/test_ops.py (spconv = torch sparse conv on CUDA) and
#      test/test_image_backbone.py (timm backbones, as on CPU);
#   2. bench/models.py on CUDA, fp32 and bf16, forward and one training step, every voxel a seed
#      (the worst case), with its verdicts on the targets (SGN-T >= 20 frames/s in bf16; SGN-L training
#      memory below 7.16 GB);
#   3. L2COcc-L/-C/-D beside SGN-T (and HTCL when config/models/htcl.yaml exists): forward and training step,
#      with their time and live-tensor ratios to those references;
#   4. the depth sources on CUDA: MSNet2D and MSNet3D from a 370 x 1220 stereo pair to pseudo-LiDAR, fp32 and bf16.
# Results go to $OUT when it is set, else ./gpu_out. With the spconv bundle of bench/gpu_bundle.sh
# carried in .gpu/, spconv is unpacked to /tmp/site first; without it the sparse convolutions use the torch
# backend and test_ops' spconv test reports spconv as missing.
#
#   bash bench/gpu_session.sh       (see docs/benchmarks.md, "Running the GPU benchmark on your machine")
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if [ -f .gpu/spconv_cu124_py312.tar.xz ]; then
    mkdir -p /tmp/site && tar -xJf .gpu/spconv_cu124_py312.tar.xz -C /tmp/site
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
{
    nvidia-smi -L
    python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
    python3 -c "import spconv; print('spconv', spconv.__version__)" 2>&1 | tail -1
} 2>&1 | tee "$out/machine.txt"
python3 -m pytest -q -rs -p no:cacheprovider test/test_gpu.py test/test_ops.py \
    test/test_image_backbone.py 2>&1 | tee "$out/pytest_gpu.txt"
python3 bench/models.py --device cuda --train --seed-fraction 1 --flops --live-tensors --markdown "$out/bench_gpu.md" 2>&1 \
    | tee "$out/bench_gpu.txt"
# L2COcc's cost beside SGN-T (and HTCL once its config is on this branch), ratios of the same run (issue #13)
l2cocc_refs="sgn_t"; [ -f config/models/htcl.yaml ] && l2cocc_refs="sgn_t htcl"
python3 bench/models.py --configs $l2cocc_refs l2cocc_l l2cocc_c l2cocc_d --device cuda --train --live-tensors \
    --ratios $l2cocc_refs --markdown "$out/bench_l2cocc_gpu.md" 2>&1 | tee "$out/bench_l2cocc_gpu.txt"
python3 bench/models.py --configs --depth msnet2d msnet3d --device cuda --markdown "$out/bench_depth_gpu.md" 2>&1 \
    | tee "$out/bench_depth_gpu.txt"
