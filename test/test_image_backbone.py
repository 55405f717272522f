"""ImageBackbone (timm + frozen stages, frozen BatchNorm, checked weights loading) against torchvision's ResNets."""

from __future__ import annotations

import pytest
import torch
import torchvision

from ssc_core.errors import CheckpointMismatchError, ConfigError
from ssc_core.models.blocks.image_backbone import build_image_backbone


def _randomise_batch_norms(net: torch.nn.Module) -> None:
    """Non-trivial BN statistics and affine, so that equal features mean equal normalisation too."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


def _torchvision_layer3(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer3(net.layer2(net.layer1(x)))


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_weights_file_gives_torchvisions_layer3_features(tmp_path, depth):
    torch.manual_seed(depth)
    reference = getattr(torchvision.models, f"resnet{depth}")(weights=None).eval()
    _randomise_batch_norms(reference)
    path = tmp_path / f"resnet{depth}.pth"
    torch.save(reference.state_dict(), path)  # torchvision's names, classifier fc.* included
    ours = build_image_backbone({"name": f"resnet{depth}", "out_indices": [3], "frozen_stages": 1,
                                 "norm_eval": True, "pretrained_path": str(path)}).eval()
    image = torch.randn(2, 3, 64, 160)
    with torch.no_grad():
        features = ours(image)
        expected = _torchvision_layer3(reference, image)
    assert len(features) == 1 and ours.out_channels == [expected.shape[1]] and ours.strides == [16]
    assert torch.equal(features[0], expected)


def test_timm_named_file_with_wrappers_and_prefixes_loads(tmp_path):
    import timm

    source = timm.create_model("resnet18", pretrained=False)  # a full timm model: fc included
    state = {f"module.backbone.{k}": v for k, v in source.state_dict().items()}
    path = tmp_path / "timm_resnet18.pth"
    torch.save({"state_dict": state, "meta": {"epoch": 3}}, path)
    ours = build_image_backbone({"name": "resnet18", "out_indices": [2, 3], "pretrained_path": str(path)})
    torch.testing.assert_close(ours.model.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    assert ours.strides == [8, 16] and ours.out_channels == [128, 256]


def test_weights_of_another_model_fail_naming_the_keys(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match=r"does not fit timm resnet50: .*missing .*layer1\.0\.conv3"):
        build_image_backbone({"name": "resnet50", "pretrained_path": str(path)})
    with pytest.raises(ConfigError, match="does not exist"):
        build_image_backbone({"name": "resnet18", "pretrained_path": str(tmp_path / "nope.pth")})
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointMismatchError, match="cannot read weights"):
        build_image_backbone({"name": "resnet18", "pretrained_path": str(tmp_path / "junk.pth")})


def test_frozen_stages_norm_eval_and_unused_stages():
    net = build_image_backbone({"name": "resnet18", "out_indices": [3], "frozen_stages": 1, "norm_eval": True})
    net.train()
    body = net.model
    assert not any(p.requires_grad for p in body.conv1.parameters())
    assert not any(p.requires_grad for p in body.layer1.parameters())
    assert not any(p.requires_grad for p in body.layer4.parameters())  # built (counted) but never run
    assert body.layer2[0].conv1.weight.requires_grad and body.layer3[0].conv1.weight.requires_grad
    assert not body.layer3[0].bn1.weight.requires_grad
    assert all(not m.training for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert body.layer3[0].conv1.training
    features = net(torch.randn(1, 3, 64, 160))
    assert [f.shape for f in features] == [(1, 256, 4, 10)]

    trainable = build_image_backbone({"name": "resnet18", "out_indices": [1, 2]}).train()
    assert all(p.requires_grad for p in trainable.model.layer1.parameters())
    assert all(m.training for m in trainable.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not any(p.requires_grad for p in trainable.model.layer3.parameters())


def test_efficientnet_levels_with_the_head_map():
    net = build_image_backbone({"name": "tf_efficientnet_b0", "out_indices": [1, 2, 3, 4], "with_head": True,
                                "drop_path_rate": 0.2})
    assert net.out_channels == [24, 40, 112, 320, 1280] and net.strides == [4, 8, 16, 32, 32]
    assert all(p.requires_grad for p in net.parameters())  # the head map uses every module
    features = net(torch.randn(1, 3, 96, 320))
    assert [tuple(f.shape) for f in features] == [(1, c, 96 // s, 320 // s) for c, s in
                                                  zip(net.out_channels, net.strides)]
    sum(f.mean() for f in features).backward()
    assert net.model.conv_head.weight.grad is not None and net.model.blocks[0][0].conv_dw.weight.grad is not None


def test_bad_backbone_configs_get_one_clear_error():
    with pytest.raises(ConfigError, match="depth/source are gone"):
        build_image_backbone({"depth": 50, "out_indices": [2]})
    with pytest.raises(ConfigError, match="not a timm model"):
        build_image_backbone({"name": "resnet5000"})
    with pytest.raises(ConfigError, match=r"out_indices must be increasing timm feature indices in 0\.\.4"):
        build_image_backbone({"name": "resnet18", "out_indices": [5]})
    with pytest.raises(ConfigError, match="unknown backbone keys"):
        build_image_backbone({"name": "resnet18", "pretrianed": True})


def test_hub_weights_failure_offline_says_it_needs_the_internet(monkeypatch):
    import timm

    def offline(*args, **kwargs):
        if kwargs.get("pretrained"):
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return original(*args, **kwargs)

    original = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(ConfigError, match="needs the internet.*pretrained_path"):
        build_image_backbone({"name": "resnet18", "pretrained": True})

