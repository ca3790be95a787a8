"""The PyTorch peer of our ResNet-20 (option-A shortcuts), with a weight copy
from the Flax model so that both sides compute the same function.

Imported only by the benchmarks (needs ``pip install -e ".[bench]"``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
  def __init__(self, cin, cout, stride):
    super().__init__()
    self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.b1 = nn.BatchNorm2d(cout)
    self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.b2 = nn.BatchNorm2d(cout)
    self.stride, self.pad = stride, cout - cin

  def forward(self, x):
    y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
    s = x[:, :, ::self.stride, ::self.stride]
    if self.pad:
      s = F.pad(s, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
    return F.relu(y + s)


class ResNet20(nn.Module):
  """NCHW input already normalised (build the Flax side with
  ``input_mean=None, input_std=None`` to compare outputs). ``blocks_per_stage``
  and ``widths`` give the zoo's other depths (``resnet``, depth ``6n + 2``)."""

  def __init__(self, num_classes: int = 10, blocks_per_stage: int = 3,
               widths: tuple[int, int, int] = (16, 32, 64)):
    super().__init__()
    self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False),
                              nn.BatchNorm2d(widths[0]), nn.ReLU())
    blocks, cin = [], widths[0]
    for s, cout in enumerate(widths):
      for b in range(blocks_per_stage):
        blocks.append(Block(cin, cout, 2 if s > 0 and b == 0 else 1))
        cin = cout
    self.blocks = nn.Sequential(*blocks)
    self.fc = nn.Linear(widths[-1], num_classes)

  def forward(self, x):
    return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


def _copy_conv(dst: nn.Conv2d, src) -> None:
  # Flax HWIO -> torch OIHW.
  dst.weight.data = torch.from_numpy(np.asarray(src.kernel[...]).transpose(3, 2, 0, 1).copy())


def _copy_bn(dst: nn.BatchNorm2d, src) -> None:
  dst.weight.data = torch.from_numpy(np.asarray(src.scale[...]).copy())
  dst.bias.data = torch.from_numpy(np.asarray(src.bias[...]).copy())
  dst.running_mean.data = torch.from_numpy(np.asarray(src.mean[...]).copy())
  dst.running_var.data = torch.from_numpy(np.asarray(src.var[...]).copy())
  dst.eps = src.epsilon


def from_flax(model) -> ResNet20:
  """A torch ResNet-20 in eval mode holding the weights of our ``resnet20``
  (or of a ``resnet`` of another depth and widths)."""
  return copy_from_flax(like_flax(model), model).eval()


def like_flax(model) -> ResNet20:
  """A torch network of our model's depth and widths (fresh weights)."""
  n = len(model.blocks) // 3
  widths = tuple(int(model.blocks[s * n].conv1.kernel.shape[-1]) for s in range(3))
  return ResNet20(model.num_classes, n, widths)


def copy_from_flax(net: ResNet20, model) -> ResNet20:
  """Overwrites ``net``'s weights with those of our ``resnet20`` (in place)."""
  _copy_conv(net.stem[0], model.stem_conv)
  _copy_bn(net.stem[1], model.stem_bn)
  for dst, src in zip(net.blocks, model.blocks):
    _copy_conv(dst.c1, src.conv1)
    _copy_bn(dst.b1, src.bn1)
    _copy_conv(dst.c2, src.conv2)
    _copy_bn(dst.b2, src.bn2)
  net.fc.weight.data = torch.from_numpy(np.asarray(model.fc.kernel[...]).T.copy())
  net.fc.bias.data = torch.from_numpy(np.asarray(model.fc.bias[...]).copy())
  return net
