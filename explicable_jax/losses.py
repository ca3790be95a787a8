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
import optax


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


LOSSES: dict[str, Callable[..., Callable]] = {
    "cross_entropy": lambda **kw: cross_entropy_loss,
    "label_smoothing": lambda alpha=0.1, **kw: make_label_smoothing_loss(alpha),
}
"""Loss factories by name: ``LOSSES[name](**options) -> loss_fn``."""


def register_loss(name: str, factory: Callable[..., Callable]) -> None:
  """Makes ``factory(**options) -> loss_fn`` available to the CLI as ``name``."""
  LOSSES[name] = factory
