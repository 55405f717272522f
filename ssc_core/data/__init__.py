"""Dataset formats (SemanticKITTI, SSCBench-KITTI-360, NYUv2), the synthetic world, and torch Datasets."""
