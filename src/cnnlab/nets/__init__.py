"""Plain ``nn.Module`` networks; each is built from ``conf/model/net/*.yaml``."""

from cnnlab.nets.convnet import ConvNet
from cnnlab.nets.keras_cnn import KerasCNN
from cnnlab.nets.layers import CrossChannelPool2d, FixedFilter2d, StochasticPool2d
from cnnlab.nets.lenet5 import LeNet5
from cnnlab.nets.mycnn import MyCNN
from cnnlab.nets.resnet import ResNet18Transfer

__all__ = [
    "ConvNet",
    "CrossChannelPool2d",
    "FixedFilter2d",
    "KerasCNN",
    "LeNet5",
    "MyCNN",
    "ResNet18Transfer",
    "StochasticPool2d",
]
