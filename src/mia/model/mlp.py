"""The four MLPs of RGA and BFM: Linear -> ReLU -> Linear (paper Sec. IV-B)."""

from torch import nn


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, out_dim))
