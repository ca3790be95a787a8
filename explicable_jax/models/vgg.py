"""VGG-16 with batch norm, CIFAR variant (Simonyan and Zisserman 2015; Ioffe
and Szegedy 2015): thirteen 3x3 conv-BN-ReLU layers in five blocks, each
closed by 2x2 max pooling, then a single linear read-out from the 512
features left at 1x1 resolution."""
from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from explicable_jax.models.base import (StagedModel, check_image_input,
                                        he_normal, normalize_input)
from explicable_jax.models.resnet import CIFAR10_MEAN, CIFAR10_STD, _bn, _conv

__all__ = [
    "VGG16BN", "VGG16_BLOCKS",
]

VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512),
                (512, 512, 512))


class _ConvBlock(nnx.Module):

  def __init__(self, cin: int, widths: Sequence[int], *, rngs: nnx.Rngs):
    chans = [cin, *widths]
    self.convs = nnx.List([_conv(a, b, 3, 1, rngs) for a, b in zip(chans[:-1], chans[1:])])
    self.bns = nnx.List([_bn(b, rngs) for b in widths])

  def __call__(self, x: jax.Array) -> jax.Array:
    for conv, bn in zip(self.convs, self.bns):
      x = jax.nn.relu(bn(conv(x)))
    return nnx.max_pool(x, (2, 2), strides=(2, 2))


class VGG16BN(StagedModel):
  """VGG-16-BN for 32x32 inputs. Stages: ``block1 .. block5``, ``pool``, ``logits``."""

  def __init__(self, num_classes: int = 10, *, in_channels: int = 3,
               blocks: Sequence[Sequence[int]] = VGG16_BLOCKS,
               input_mean: Sequence[float] | None = CIFAR10_MEAN,
               input_std: Sequence[float] | None = CIFAR10_STD,
               rngs: nnx.Rngs):
    self.in_channels = in_channels
    self.num_classes = num_classes
    self.input_mean = tuple(input_mean) if input_mean is not None else None
    self.input_std = tuple(input_std) if input_std is not None else None
    mods, cin = [], in_channels
    for widths in blocks:
      mods.append(_ConvBlock(cin, widths, rngs=rngs))
      cin = widths[-1]
    self.blocks = nnx.List(mods)
    self.fc = nnx.Linear(cin, num_classes, kernel_init=he_normal, rngs=rngs)

  def stages(self):
    def block_stage(i, blk):
      def fn(x, rngs):
        if i == 0:
          check_image_input("x", x, self.in_channels)
          x = normalize_input(x, self.input_mean, self.input_std)
        return blk(x)
      return fn
    return [
        *[(f"block{i + 1}", block_stage(i, b)) for i, b in enumerate(self.blocks)],
        ("pool", lambda x, rngs: x.mean(axis=(1, 2))),
        ("logits", lambda x, rngs: self.fc(x)),
    ]
