"""Models: the :class:`Classifier` contract, adapters, the zoo and its registry.

Every method of the library takes a :class:`Classifier` (``clf.logits(x)``,
``clf.split(layer)``, ``clf.layers``, ``clf.with_params(p)``; a pytree that
crosses ``jax.jit``). Build one from the zoo (:func:`classifier`), from any NNX
module (:func:`from_nnx`), a linen module (:func:`from_linen`) or plain
functions (:func:`from_functions`); :func:`save` / :func:`load` write and read
any of them. The zoo's models are Flax NNX :class:`StagedModel` s with a
features/head split at any named stage; :func:`apply_model` and
:func:`split_at` are the same computations on ``(graphdef, params,
model_state)`` for code that holds the pieces.
"""
from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from explicable_jax import conventions
from explicable_jax.models.adapters import (FunctionBackend, LinenBackend,
                                            NNXBackend, from_functions,
                                            from_linen, from_nnx)
from explicable_jax.models.base import StagedModel
from explicable_jax.models.classifier import Backend, Classifier, Spec, as_classifier
from explicable_jax.models.cnn import SmallCNN
from explicable_jax.models.io import load, model_folder, read_meta, save
from explicable_jax.models.mlp import MLP
from explicable_jax.models.registry import (MODELS, classifier, create_model,
                                            register_model)
from explicable_jax.models.resnet import (CIFAR10_MEAN, CIFAR10_STD,
                                          BasicBlock, Bottleneck, CifarResNet,
                                          PreActResNetV2, resnet20)
from explicable_jax.models.vgg import VGG16BN

__all__ = [
    "Classifier", "Spec", "Backend", "as_classifier", "classifier", "from_nnx",
    "from_linen", "from_functions", "NNXBackend", "LinenBackend",
    "FunctionBackend", "register_model", "save", "load", "model_folder", "read_meta",
    "MODELS", "StagedModel", "MLP", "SmallCNN", "CifarResNet", "PreActResNetV2",
    "VGG16BN", "BasicBlock", "Bottleneck", "resnet20", "create_model",
    "split_model", "merge_model", "apply_model", "split_at", "count_params",
    "CIFAR10_MEAN", "CIFAR10_STD",
]


def split_model(model: nnx.Module):
  """``(graphdef, params, model_state)``: the module as static structure + pytrees."""
  return nnx.split(model, nnx.Param, ...)


@conventions.boundary(graphdef="graphdef")
def merge_model(graphdef, params, model_state) -> nnx.Module:
  """Inverse of :func:`split_model`: a live module (a fresh copy)."""
  return nnx.merge(graphdef, params, model_state)


def _staged_backend(graphdef, layers: tuple[str, ...]) -> NNXBackend:
  # Not cached: some graphdefs are unhashable (list-valued attributes).
  return NNXBackend(graphdef, "staged", layers)


@conventions.boundary(graphdef="graphdef")
def apply_model(graphdef, params, model_state, x: jax.Array, *,
                train: bool = False, key: jax.Array | None = None):
  """Pure forward pass of a zoo model: ``(logits, new_model_state)``.

  In training mode batch norm uses and updates batch statistics and dropout
  draws its masks from ``key``; in evaluation mode the model is deterministic
  and ``new_model_state`` equals ``model_state``. Same as
  ``Classifier.apply``.
  """
  return _staged_backend(graphdef, ()).apply(params, model_state, x,
                                             train=train, key=key)


@conventions.boundary(graphdef="graphdef")
def split_at(graphdef, params, model_state, layer: str):
  """``(features_fn, head_fn)`` of a zoo model cut after stage ``layer``
  (``Classifier.split`` on the pieces).

  Both are pure evaluation-mode functions of a batch:
  ``head_fn(features_fn(x)) == apply_model(..., x)[0]``. This is the pair that
  the layer attribution methods take.
  """
  names = nnx.merge(graphdef, params, model_state).layer_names
  clf = Classifier(params, model_state, Spec(_staged_backend(graphdef, names)))
  return clf.split(layer)


def count_params(params) -> int:
  """Number of scalar parameters in a pytree."""
  leaves = jax.tree.leaves(params)
  if any(not hasattr(p, "shape") for p in leaves):
    raise TypeError(f"params must be a pytree of arrays (a model's parameters); got "
                    f"{type(params).__name__}.")
  return int(sum(np.size(p) for p in jax.tree.leaves(params)))
