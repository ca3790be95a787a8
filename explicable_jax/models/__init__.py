"""Flax NNX model zoo with a features/head split at any named layer.

Models are built live (``create_model``) and cross ``jax.jit`` as a static
``graphdef`` plus two pytrees (``params``, the trained weights, and
``model_state``, e.g. batch-norm statistics) through the pure functions
:func:`apply_model` and :func:`split_at`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from explicable_jax import _validation
from explicable_jax.models.base import StagedModel
from explicable_jax.models.cnn import SmallCNN
from explicable_jax.models.mlp import MLP
from explicable_jax.models.resnet import (CIFAR10_MEAN, CIFAR10_STD,
                                          BasicBlock, Bottleneck, CifarResNet,
                                          PreActResNetV2, resnet20)
from explicable_jax.models.vgg import VGG16BN

__all__ = [
    "MODELS", "StagedModel", "MLP", "SmallCNN", "CifarResNet", "PreActResNetV2",
    "VGG16BN", "BasicBlock", "Bottleneck", "resnet20", "create_model",
    "split_model", "merge_model", "apply_model", "split_at", "count_params",
    "CIFAR10_MEAN", "CIFAR10_STD",
]


def _image_kwargs(input_shape, kwargs):
  _validation.check_rank("input_shape", tuple(input_shape), (3,))
  kwargs.setdefault("in_channels", input_shape[-1])
  if input_shape[-1] != 3:  # CIFAR statistics only make sense for RGB.
    kwargs.setdefault("input_mean", None)
    kwargs.setdefault("input_std", None)
  return kwargs


def _mlp(input_shape, num_classes, rngs, hidden=(50, 30), **kw):
  return MLP(int(np.prod(input_shape)), hidden, num_classes, rngs=rngs, **kw)


def _cnn(input_shape, num_classes, rngs, **kw):
  _validation.check_rank("input_shape", tuple(input_shape), (3,))
  if kw.get("pool") == "flatten":
    kw.setdefault("spatial", tuple(input_shape[:2]))
  return SmallCNN(input_shape[-1], num_classes, rngs=rngs, **kw)


def _resnet20(input_shape, num_classes, rngs, **kw):
  return CifarResNet(20, num_classes, rngs=rngs, **_image_kwargs(input_shape, kw))


def _resnet(input_shape, num_classes, rngs, depth=20, **kw):
  return CifarResNet(depth, num_classes, rngs=rngs, **_image_kwargs(input_shape, kw))


def _resnet_v2(input_shape, num_classes, rngs, depth=29, **kw):
  return PreActResNetV2(depth, num_classes, rngs=rngs, **_image_kwargs(input_shape, kw))


def _vgg16_bn(input_shape, num_classes, rngs, **kw):
  return VGG16BN(num_classes, rngs=rngs, **_image_kwargs(input_shape, kw))


MODELS: dict[str, Callable[..., StagedModel]] = {
    "mlp": _mlp,
    "cnn": _cnn,
    "resnet20": _resnet20,
    "resnet": _resnet,
    "resnet_v2": _resnet_v2,
    "resnet29_v2": _resnet_v2,
    "vgg16_bn": _vgg16_bn,
}


def create_model(name: str, *, input_shape: Sequence[int], num_classes: int,
                 key: jax.Array, **kwargs: Any) -> StagedModel:
  """Builds a model of the zoo by name.

  Args:
    name: one of :data:`MODELS` (``mlp``, ``cnn``, ``resnet20``, ``resnet``,
      ``resnet_v2``, ``resnet29_v2``, ``vgg16_bn``).
    input_shape: shape of one example, e.g. ``(32, 32, 3)``.
    num_classes: number of classes.
    key: PRNG key for the initial weights.
    **kwargs: passed to the model's constructor (``hidden=(50, 30)``,
      ``depth=29``, ``dropout_rate=0.5``, ...).

  Returns:
    The live NNX module.
  """
  builder = _validation.lookup("model", name, MODELS)
  _validation.check_positive("num_classes", num_classes, integer=True)
  return builder(tuple(input_shape), int(num_classes), nnx.Rngs(params=key), **kwargs)


def split_model(model: nnx.Module):
  """``(graphdef, params, model_state)``: the module as static structure + pytrees."""
  return nnx.split(model, nnx.Param, ...)


def merge_model(graphdef, params, model_state) -> nnx.Module:
  """Inverse of :func:`split_model`: a live module (a fresh copy)."""
  return nnx.merge(graphdef, params, model_state)


def apply_model(graphdef, params, model_state, x: jax.Array, *,
                train: bool = False, key: jax.Array | None = None):
  """Pure forward pass: ``(logits, new_model_state)``.

  In training mode batch norm uses and updates batch statistics and dropout
  draws its masks from ``key``; in evaluation mode the model is deterministic
  and ``new_model_state`` equals ``model_state``.
  """
  model = nnx.merge(graphdef, params, model_state, copy=True)
  model.train() if train else model.eval()
  rngs = nnx.Rngs(dropout=key) if key is not None else None
  logits = model(x, rngs=rngs)
  _, _, new_state = nnx.split(model, nnx.Param, ...)
  return logits, new_state


def split_at(graphdef, params, model_state, layer: str):
  """``(features_fn, head_fn)`` of the model cut after stage ``layer``.

  Both are pure evaluation-mode functions of a batch:
  ``head_fn(features_fn(x)) == apply_model(..., x)[0]``. This is the pair that
  the layer attribution methods take.
  """
  model = nnx.merge(graphdef, params, model_state)
  model._index(layer)  # Validates the name before any tracing.

  def features_fn(x):
    m = nnx.merge(graphdef, params, model_state, copy=True)
    m.eval()
    return m.features(x, layer)

  def head_fn(h):
    m = nnx.merge(graphdef, params, model_state, copy=True)
    m.eval()
    return m.head(h, layer)

  return features_fn, head_fn


def count_params(params) -> int:
  """Number of scalar parameters in a pytree."""
  return int(sum(np.size(p) for p in jax.tree.leaves(params)))
