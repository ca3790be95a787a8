"""ResNets for 32x32 images: He et al.'s CIFAR ResNet-(6n+2) and pre-activation
ResNet-v2-(9n+2) with bottleneck units.

References:
  He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition", CVPR
  2016, section 4.2 (ResNet-20 = 6n+2 with n=3; option A shortcuts).
  He, Zhang, Ren, Sun. "Identity Mappings in Deep Residual Networks", ECCV
  2016 (pre-activation units); the ResNet-29 v2 of Olmo et al. follows the
  Keras ``cifar10_resnet`` example (version 2, depth 29).
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from explicable_jax.models.base import (StagedModel, check_image_input, check_widths,
                                        he_normal, normalize_input)
from explicable_jax.models.conv import conv_general_dilated

__all__ = [
    "BasicBlock", "Bottleneck", "CIFAR10_MEAN", "CIFAR10_STD", "CifarResNet", "PreActResNetV2",
    "resnet20",
]

# Per-channel statistics of the CIFAR-10 training images (in [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _bn(features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
  # momentum 0.9 here is torch's momentum=0.1.
  return nnx.BatchNorm(features, momentum=0.9, epsilon=1e-5, rngs=rngs)


def _conv(cin: int, cout: int, k: int, stride: int, rngs: nnx.Rngs, *,
          bias: bool = False) -> nnx.Conv:
  return nnx.Conv(cin, cout, (k, k), strides=(stride, stride),
                  padding=[(k // 2, k // 2)] * 2, use_bias=bias,
                  kernel_init=he_normal, conv_general_dilated=conv_general_dilated,
                  rngs=rngs)


def _normalized_stem(model, x: jax.Array) -> jax.Array:
  """Input check, per-channel normalisation, then conv-BN-ReLU."""
  check_image_input("x", x, model.in_channels)
  x = normalize_input(x, model.input_mean, model.input_std)
  return jax.nn.relu(model.stem_bn(model.stem_conv(x)))


class BasicBlock(nnx.Module):
  """Two 3x3 conv-BN layers with a shortcut (He et al. 2016, figure 2).

  ``shortcut="A"``: identity, subsampled and zero-padded in channels when the
  shape changes (the CIFAR ResNets of the paper). ``"B"``: a 1x1 conv + BN
  projection when the shape changes.
  """

  def __init__(self, cin: int, cout: int, stride: int, shortcut: str, *,
               rngs: nnx.Rngs):
    self.conv1 = _conv(cin, cout, 3, stride, rngs)
    self.bn1 = _bn(cout, rngs)
    self.conv2 = _conv(cout, cout, 3, 1, rngs)
    self.bn2 = _bn(cout, rngs)
    self.stride = stride
    self.pad = cout - cin
    project = shortcut == "B" and (stride != 1 or cin != cout)
    self.projection = _conv(cin, cout, 1, stride, rngs) if project else None
    self.projection_bn = _bn(cout, rngs) if project else None

  def __call__(self, x: jax.Array) -> jax.Array:
    y = jax.nn.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    if self.projection is not None:
      s = self.projection_bn(self.projection(x))
    else:
      s = x[:, :: self.stride, :: self.stride, :]
      if self.pad:
        s = jnp.pad(s, ((0, 0), (0, 0), (0, 0),
                        (self.pad // 2, self.pad - self.pad // 2)))
    return jax.nn.relu(y + s)


def _stem_and_blocks(model):
  """The ``stem`` stage and one stage per residual block, by block name."""
  return [("stem", lambda x, rngs: _normalized_stem(model, x)),
          *[(name, (lambda blk: lambda x, rngs: blk(x))(blk))
            for name, blk in zip(model.block_names, model.blocks)]]


class CifarResNet(StagedModel):
  """He et al.'s CIFAR ResNet of depth ``6n + 2`` (ResNet-20: ``depth=20``).

  Stages: ``stem``, ``layer{1,2,3}.{0..n-1}`` (one per residual block, as the
  PyTorch ``model.layer3[-1]`` of Wu et al.), ``pool`` and ``logits``.

  Args:
    depth: ``6n + 2`` (20, 32, 44, 56, 110).
    num_classes: number of outputs.
    in_channels: channels of the NHWC input.
    widths: channels of the three stages.
    shortcut: ``"A"`` (paper, parameter-free) or ``"B"`` (projection).
    input_mean, input_std: per-channel normalisation applied inside the model.
    rngs: initialisation keys.
  """

  def __init__(self, depth: int = 20, num_classes: int = 10, *,
               in_channels: int = 3, widths: Sequence[int] = (16, 32, 64),
               shortcut: str = "A",
               input_mean: Sequence[float] | None = CIFAR10_MEAN,
               input_std: Sequence[float] | None = CIFAR10_STD,
               rngs: nnx.Rngs):
    if depth < 8 or (depth - 2) % 6:
      raise ValueError(f"depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110); got {depth!r}.")
    if shortcut not in ("A", "B"):
      raise ValueError(f"shortcut must be 'A' or 'B'; got {shortcut!r}.")
    n = (depth - 2) // 6
    widths = check_widths("widths", widths, allow_empty=False)
    if len(widths) != 3:  # depth = 6n + 2 counts three stages of n blocks
      raise ValueError(f"widths must be the channels of the three stages, e.g. (16, 32, 64); "
                       f"got {widths!r}.")
    self.in_channels = in_channels
    self.num_classes = num_classes
    self.input_mean = tuple(input_mean) if input_mean is not None else None
    self.input_std = tuple(input_std) if input_std is not None else None
    self.stem_conv = _conv(in_channels, widths[0], 3, 1, rngs)
    self.stem_bn = _bn(widths[0], rngs)
    blocks, names, cin = [], [], widths[0]
    for s, cout in enumerate(widths):
      for b in range(n):
        stride = 2 if (s > 0 and b == 0) else 1
        blocks.append(BasicBlock(cin, cout, stride, shortcut, rngs=rngs))
        names.append(f"layer{s + 1}.{b}")
        cin = cout
    self.blocks = nnx.List(blocks)
    self.block_names = tuple(names)
    self.fc = nnx.Linear(cin, num_classes, kernel_init=he_normal, rngs=rngs)

  def stages(self):
    return [*_stem_and_blocks(self),
            ("pool", lambda x, rngs: x.mean(axis=(1, 2))),
            ("logits", lambda x, rngs: self.fc(x))]


def resnet20(num_classes: int = 10, *, rngs: nnx.Rngs, **kwargs) -> CifarResNet:
  """ResNet-20 (0.27M parameters), the network of Wu et al."""
  return CifarResNet(20, num_classes, rngs=rngs, **kwargs)


class _PreActUnit(nnx.Module):
  """``[BN -> ReLU] -> Conv`` as in Keras' ``resnet_layer(conv_first=False)``."""

  def __init__(self, cin: int, cout: int, k: int, stride: int, *,
               preact: bool, rngs: nnx.Rngs):
    self.bn = _bn(cin, rngs) if preact else None
    self.conv = _conv(cin, cout, k, stride, rngs, bias=True)

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.bn is not None:
      x = jax.nn.relu(self.bn(x))
    return self.conv(x)


class Bottleneck(nnx.Module):
  """Pre-activation bottleneck unit 1x1 -> 3x3 -> 1x1 (He et al. ECCV 2016)."""

  def __init__(self, cin: int, cmid: int, cout: int, stride: int, *,
               first_preact: bool, rngs: nnx.Rngs):
    self.a = _PreActUnit(cin, cmid, 1, stride, preact=first_preact, rngs=rngs)
    self.b = _PreActUnit(cmid, cmid, 3, 1, preact=True, rngs=rngs)
    self.c = _PreActUnit(cmid, cout, 1, 1, preact=True, rngs=rngs)
    project = stride != 1 or cin != cout
    self.projection = _conv(cin, cout, 1, stride, rngs, bias=True) if project else None

  def __call__(self, x: jax.Array) -> jax.Array:
    y = self.c(self.b(self.a(x)))
    s = x if self.projection is None else self.projection(x)
    return s + y


class PreActResNetV2(StagedModel):
  """Pre-activation ResNet-v2 of depth ``9n + 2`` (Olmo et al.: ResNet-29 v2).

  Follows the Keras ``cifar10_resnet`` example, version 2: a conv-BN-ReLU
  stem with 16 channels; three stages of ``n`` bottleneck units whose
  outputs have 64, 128 and 256 channels; a final BN-ReLU, global average
  pooling and a dense read-out. Stages: ``stem``, ``stage{1,2,3}.{0..n-1}``,
  ``post`` (final BN-ReLU), ``pool`` and ``logits``.
  """

  def __init__(self, depth: int = 29, num_classes: int = 10, *,
               in_channels: int = 3,
               input_mean: Sequence[float] | None = CIFAR10_MEAN,
               input_std: Sequence[float] | None = CIFAR10_STD,
               rngs: nnx.Rngs):
    if depth < 11 or (depth - 2) % 9:
      raise ValueError(f"depth must be 9n + 2 with n >= 1 (11, 20, 29, 56, ...); got {depth!r}.")
    n = (depth - 2) // 9
    self.in_channels = in_channels
    self.num_classes = num_classes
    self.input_mean = tuple(input_mean) if input_mean is not None else None
    self.input_std = tuple(input_std) if input_std is not None else None
    self.stem_conv = _conv(in_channels, 16, 3, 1, rngs, bias=True)
    self.stem_bn = _bn(16, rngs)
    blocks, names, cin = [], [], 16
    for stage in range(3):
      cout = cin * 4 if stage == 0 else cin * 2
      for b in range(n):
        stride = 2 if (stage > 0 and b == 0) else 1
        first_preact = not (stage == 0 and b == 0)
        unit_in = cin if b == 0 else cout
        blocks.append(Bottleneck(unit_in, cin, cout, stride,
                                 first_preact=first_preact, rngs=rngs))
        names.append(f"stage{stage + 1}.{b}")
      cin = cout
    self.blocks = nnx.List(blocks)
    self.block_names = tuple(names)
    self.post_bn = _bn(cin, rngs)
    self.fc = nnx.Linear(cin, num_classes, kernel_init=he_normal, rngs=rngs)

  def stages(self):
    return [*_stem_and_blocks(self),
            ("post", lambda x, rngs: jax.nn.relu(self.post_bn(x))),
            ("pool", lambda x, rngs: x.mean(axis=(1, 2))),
            ("logits", lambda x, rngs: self.fc(x))]
