"""A small convolutional network for MNIST-sized and CIFAR-sized images."""
from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from explicable_jax import _validation
from explicable_jax.models.conv import conv_general_dilated
from explicable_jax.models.base import (StagedModel, check_image_input, check_widths,
                                        he_normal, normalize_input)

__all__ = [
    "SmallCNN",
]


class SmallCNN(StagedModel):
  """``[Conv3x3 -> ReLU -> MaxPool2]`` per width, pooling, Dense, logits.

  Stages: ``conv_0 .. conv_{k-1}`` (after pooling), ``pool`` (a flat vector:
  the global average over positions, or every position flattened),
  ``dense``, ``logits``.

  Args:
    in_channels: channels of the NHWC input.
    num_classes: number of outputs.
    widths: output channels of the conv layers.
    dense: width of the hidden dense layer.
    input_mean, input_std: optional per-channel normalisation constants.
    pool: ``"mean"`` (global average: any input size, little capacity) or
      ``"flatten"`` (keeps where features are, e.g. for MNIST; needs
      ``spatial``).
    spatial: ``(H, W)`` of the input, for ``pool="flatten"``.
    rngs: initialisation keys.
  """

  def __init__(self, in_channels: int, num_classes: int, *,
               widths: Sequence[int] = (32, 64), dense: int = 128,
               input_mean: Sequence[float] | None = None,
               input_std: Sequence[float] | None = None, pool: str = "mean",
               spatial: Sequence[int] | None = None, rngs: nnx.Rngs):
    if pool not in ("mean", "flatten"):
      raise ValueError(f"pool must be 'mean' or 'flatten'; got {pool!r}.")
    if pool == "flatten" and spatial is None:
      raise ValueError("pool='flatten' needs spatial=(H, W), the input's size.")
    self.pool = pool
    widths = check_widths("widths", widths, allow_empty=False)
    _validation.check_positive("dense", dense, integer=True)
    chans = [in_channels, *widths]
    self.in_channels = in_channels
    self.num_classes = num_classes
    self.input_mean = tuple(input_mean) if input_mean is not None else None
    self.input_std = tuple(input_std) if input_std is not None else None
    self.convs = nnx.List([
        nnx.Conv(a, b, (3, 3), kernel_init=he_normal,
                 conv_general_dilated=conv_general_dilated, rngs=rngs)
        for a, b in zip(chans[:-1], chans[1:])
    ])
    flat = chans[-1]
    if pool == "flatten":
      h, w = (int(v) for v in spatial)
      for _ in widths:  # each stage halves the size, rounding up ("SAME")
        h, w = -(-h // 2), -(-w // 2)
      flat = h * w * chans[-1]
    self.dense = nnx.Linear(flat, dense, kernel_init=he_normal, rngs=rngs)
    self.out = nnx.Linear(dense, num_classes, rngs=rngs)

  def stages(self):
    def conv_stage(conv, first):
      def fn(x, rngs):
        if first:
          check_image_input("x", x, self.in_channels)
          x = normalize_input(x, self.input_mean, self.input_std)
        x = jax.nn.relu(conv(x))
        return nnx.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
      return fn

    return [
        *[(f"conv_{i}", conv_stage(c, i == 0)) for i, c in enumerate(self.convs)],
        ("pool", lambda x, rngs: (x.mean(axis=(1, 2)) if self.pool == "mean"
                                  else x.reshape(x.shape[0], -1))),
        ("dense", lambda x, rngs: jax.nn.relu(self.dense(x))),
        ("logits", lambda x, rngs: self.out(x)),
    ]
