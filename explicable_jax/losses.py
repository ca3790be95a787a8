"""Per-example losses for classifiers.

Each loss takes ``logits`` of shape ``(batch, classes)`` and returns one value
per example; the caller reduces (optax's convention). Training losses plug
into :func:`explicable_jax.training.make_train_step` through the signature
``loss_fn(logits, batch, params) -> (batch,)`` and are registered by name in
:data:`LOSSES` for the command line.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from explicable_jax import _validation, similarity


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Softmax cross-entropy with integer labels, one value per example.

  .. math:: \\ell(z, y) = -\\log \\mathrm{softmax}(z)_y

  Same as ``optax.softmax_cross_entropy_with_integer_labels``.
  """
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def cross_entropy_loss(logits: jax.Array, batch: dict, params=None) -> jax.Array:
  """Training-loss form of :func:`cross_entropy`: reads ``batch["y"]``."""
  del params
  return cross_entropy(logits, batch["y"])


def make_label_smoothing_loss(alpha: float) -> Callable:
  """Cross-entropy against ``(1 - alpha) * onehot + alpha / C`` (Szegedy et al. 2016)."""
  def loss(logits, batch, params=None):
    del params
    targets = optax.smooth_labels(
        jax.nn.one_hot(batch["y"], logits.shape[-1]), alpha)
    return optax.softmax_cross_entropy(logits, targets)
  return loss


WEIGHTED_TARGETS = ("l1", "softmax")


def weighted_targets(weights, *, target: str = "l1", scale: float = 1.0) -> jax.Array:
  """The target distribution of every true class: row ``y`` is ``t(W_y)``.

  ``l1``: ``W_y / sum_k W_yk`` (the paper's WLF); ``softmax``:
  ``softmax(scale * W_y)`` (the authors' code, with ``scale`` 1; on [0, 1]
  weights this is close to uniform, e.g. about 0.22 / 0.15 on the true class
  for CIFAR-10's IHL / EKL).
  """
  _validation.check_choice("target", target, WEIGHTED_TARGETS)
  _validation.check_positive("scale", scale)
  try:
    w = similarity.check_weight_matrix("weights", np.asarray(weights))
  except jax.errors.TracerArrayConversionError:
    w = weights  # Traced: validated by the caller on the host.
  w = jnp.asarray(w, jnp.float32)
  if target == "l1":
    return w / w.sum(axis=1, keepdims=True)
  return jax.nn.softmax(scale * w, axis=1)


def weighted_cross_entropy(logits: jax.Array, labels: jax.Array, weights, *,
                           target: str = "l1", scale: float = 1.0) -> jax.Array:
  r"""Weighted loss function WLF(y, p) = L(t(W_y), p), one value per example.

  Olmo, Sengupta and Kambhampati (2020): cross-entropy against the
  distribution built from row ``y`` of the class-similarity matrix ``W``, so
  that probability on explicable (similar) classes costs less than on
  inexplicable ones:

  .. math:: \ell(z, y) = -\sum_k t_k(W_y) \log \mathrm{softmax}(z)_k

  With ``W = I`` and ``target="l1"`` it is plain cross-entropy.

  Args:
    logits: ``(N, C)``.
    labels: ``(N,)`` integer true classes.
    weights: ``(C, C)`` similarity matrix (row = true class); see
      :mod:`explicable_jax.similarity`.
    target: ``l1`` (row normalisation, the paper) or ``softmax`` (the
      authors' code); see :func:`weighted_targets`.
    scale: softmax temperature inverse, for ``target="softmax"``.
  """
  targets = weighted_targets(weights, target=target, scale=scale)
  if targets.shape[0] != logits.shape[-1]:
    raise ValueError(
        f"weights must be {logits.shape[-1]}x{logits.shape[-1]} for logits with "
        f"{logits.shape[-1]} classes; got shape {tuple(targets.shape)}.")
  return optax.softmax_cross_entropy(logits, targets[labels])


def make_weighted_loss(weights, *, target: str = "l1", scale: float = 1.0) -> Callable:
  """Training-loss form of :func:`weighted_cross_entropy` for ``make_train_step``.

  The matrix is validated and normalised once, here, on the host.
  """
  targets = weighted_targets(weights, target=target, scale=scale)

  def loss(logits, batch, params=None):
    del params
    return optax.softmax_cross_entropy(logits, targets[batch["y"]])
  return loss


def _weighted_from_file(weights: str, target: str = "l1", scale: float = 1.0, **kw):
  del kw
  return make_weighted_loss(np.load(weights), target=target, scale=scale)


LOSSES: dict[str, Callable[..., Callable]] = {
    "cross_entropy": lambda **kw: cross_entropy_loss,
    "label_smoothing": lambda alpha=0.1, **kw: make_label_smoothing_loss(alpha),
    "weighted": _weighted_from_file,
}
"""Loss factories by name: ``LOSSES[name](**options) -> loss_fn``."""


def register_loss(name: str, factory: Callable[..., Callable]) -> None:
  """Makes ``factory(**options) -> loss_fn`` available to the CLI as ``name``."""
  LOSSES[name] = factory
