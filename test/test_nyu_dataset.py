"""NYUDataset: what a CleanerS sample holds (TSDF or TSDF-CAD, the noisy depth's mapping and label weight for both),
the 2D augmentation of training samples only, and the protocol its scores are named by."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssc_core.config import load_config
from ssc_core.data.datasets import build_dataset
from ssc_core.data.nyu import NYUTsdfPaths, find_nyu_root, mapping_to_pixel_map, read_nyu_mapping, read_nyu_tsdf
from ssc_core.errors import ConfigError
from ssc_core.evaluation.scorers import scorer_for


def data_cfg(**overrides) -> dict:
    """The data section of cleaners_student_tiny (noisy TSDF, TSDF-CAD loaded, augmented) with ``overrides``."""
    return {**load_config("cleaners_student_tiny")["data"], **overrides}


def test_teacher_and_student_samples_differ_only_in_the_tsdf(synthetic_nyu_root):
    """Both read the noisy depth's mapping and label weight; tsdf is TSDF-CAD for the teacher (tsdf_source: cad),
    the noisy TSDF for the student, which also carries TSDF-CAD as tsdf_cad for its teacher."""
    paths = NYUTsdfPaths(find_nyu_root(synthetic_nyu_root))
    noisy, weight = read_nyu_tsdf(paths.tsdf("0003"))
    cad, weight_cad = read_nyu_tsdf(paths.tsdf("0003", cad=True))
    assert not np.array_equal(weight, weight_cad)  # the clean depth sees other voxels as free
    student = build_dataset(data_cfg(), "test", synthetic_nyu_root)[0]
    teacher = build_dataset(data_cfg(tsdf_source="cad", load_tsdf_cad=False), "test", synthetic_nyu_root)[0]
    np.testing.assert_array_equal(student["tsdf"][0].numpy(), noisy)
    np.testing.assert_array_equal(student["tsdf_cad"][0].numpy(), cad)
    np.testing.assert_array_equal(teacher["tsdf"][0].numpy(), cad)
    assert "tsdf_cad" not in teacher
    for sample in (student, teacher):
        np.testing.assert_array_equal(sample["label_weight"].numpy(), weight)
        np.testing.assert_array_equal(sample["mapping2d"].numpy(),
                                      mapping_to_pixel_map(read_nyu_mapping(paths.mapping("0003"))))
        assert sample["img"].shape == (3, 120, 160) and sample["target"].shape == (60, 36, 60)
        assert sample["frame_id"] == "0003"


def test_only_training_samples_are_augmented_and_their_pixels_keep_their_voxels(synthetic_nyu_root):
    paths = NYUTsdfPaths(find_nyu_root(synthetic_nyu_root))
    test_set = build_dataset(data_cfg(), "test", synthetic_nyu_root)
    assert torch.equal(test_set[0]["img"], test_set[0]["img"])  # no augmentation at test time
    train_set = build_dataset(data_cfg(), "train", synthetic_nyu_root)
    plain = build_dataset(data_cfg(augment=False), "train", synthetic_nyu_root)[0]
    visible = set(np.flatnonzero(read_nyu_mapping(paths.mapping("0001")).ravel() < 480 * 640).tolist())
    torch.manual_seed(0)
    changed = 0
    for _ in range(6):
        sample = train_set[0]
        kept = sample["mapping2d"][sample["mapping2d"] >= 0].numpy()
        assert set(kept.tolist()) <= visible and len(kept) > 0.5 * len(visible)
        assert torch.equal(sample["mapping"], plain["mapping"]) and torch.equal(sample["tsdf"], plain["tsdf"])
        changed += int(not torch.equal(sample["mapping2d"], plain["mapping2d"]))
        assert not torch.equal(sample["img"], plain["img"]) or torch.equal(sample["mapping2d"], plain["mapping2d"])
    assert changed >= 3


def test_the_protocol_flag_names_the_scores_and_bad_values_are_config_errors(synthetic_nyu_root):
    for protocol, name in (("sscnet", "SSCNet"), ("monoscene", "MonoScene")):
        dataset = build_dataset(data_cfg(eval_protocol=protocol), "test", synthetic_nyu_root)
        assert scorer_for(dataset, 12).protocol.startswith(name)
    for key, value in (("eval_protocol", "kitti"), ("tsdf_source", "clean")):
        with pytest.raises(ConfigError, match=key):
            build_dataset(data_cfg(**{key: value}), "test", synthetic_nyu_root)
    with pytest.raises(ConfigError, match="split"):
        build_dataset(data_cfg(), "trainval", synthetic_nyu_root)
