"""cnnlab: controlled CNN ablations on MNIST with Lightning and Hydra."""

__version__ = "0.1.0"
