"""Backbones (small ConvNet, ResNets without torchvision), projector and predictor heads."""

from nocollapse.models.backbone_input import BackboneInputError, RawImages
from nocollapse.models.convnet import SmallConvNet
from nocollapse.models.heads import MLPPredictor, ProjectorMLP
from nocollapse.models.registry import BACKBONES, build_backbone
from nocollapse.models.resnet import ResNet, resnet18, resnet50, small_resnet
from nocollapse.models.weights import non_finite

__all__ = ["BACKBONES", "BackboneInputError", "MLPPredictor", "ProjectorMLP", "RawImages",
           "ResNet", "SmallConvNet",
           "build_backbone", "non_finite", "resnet18", "resnet50", "small_resnet"]
