"""ssc-train warns when a config's image backbone would start (and, frozen, stay) random."""

from ssc_core.cli.train import backbone_warning
from ssc_core.config import load_config


def test_paper_config_without_weights_warns_naming_the_frozen_parts():
    warning = backbone_warning(load_config("sgn_t"))
    assert warning is not None
    assert "resnet50 backbone" in warning and "1 frozen stage(s)" in warning and "frozen BatchNorm" in warning
    assert "pretrained_path=/path/resnet50-19c8e357.pth" in warning


def test_resnet18_config_suggests_the_resnet18_file():
    warning = backbone_warning(load_config("sgn_l"))
    assert "resnet18 backbone" in warning and "resnet18-5c106cde.pth" in warning and "resnet50" not in warning


def test_weights_file_or_no_backbone_means_no_warning(tmp_path):
    cfg = load_config("sgn_l", {"model": {"backbone": {"pretrained_path": str(tmp_path / "resnet18.pth")}}})
    assert backbone_warning(cfg) is None
    assert backbone_warning({"model": {"name": "x"}}) is None
    assert backbone_warning(load_config("sgn_l", {"model": {"backbone": {"pretrained": True}}})) is None


def test_unfrozen_random_backbone_still_warns_without_claiming_frozen_parts():
    cfg = {"model": {"backbone": {"name": "tf_efficientnet_b7", "frozen_stages": 0, "norm_eval": False,
                                  "pretrained_path": None}}}
    warning = backbone_warning(cfg)
    assert warning is not None and "tf_efficientnet_b7 backbone" in warning and "frozen" not in warning
