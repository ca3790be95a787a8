"""Captum-style attributions of a :class:`~explicable_jax.models.Classifier`.

Every method here takes the classifier, a batch ``x`` ``(N, ...)`` and a
``target`` (a class index, ``N`` indices, or ``"predicted"``), like Captum's
``attribute(inputs, target=...)``; layer methods also take ``layer=`` (one of
``clf.layers``). They are thin: input methods ``jax.vmap`` the one-example
core of :mod:`explicable_jax.attribution.input` over the batch with
``class_score_fn(clf.logits, t)``, and layer methods call the core of
:mod:`explicable_jax.attribution.layer` on ``clf.split(layer)``. Jit them at
the outermost boundary with the classifier as an argument::

    ig = jax.jit(lambda c, x: batched.integrated_gradients(c, x, target="predicted"))
    maps = ig(clf, images)
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from explicable_jax import models
from explicable_jax.attribution import _common, input as input_lib
from explicable_jax.attribution import layer as layer_lib
from explicable_jax.attribution import second_order as second_order_lib

__all__ = [
    "saliency", "gradient_x_input", "integrated_gradients", "smoothgrad",
    "layer_conductance", "neuron_conductance", "layer_gradient_x_activation",
    "layer_integrated_gradients", "grad_cam", "second_order_attribution",
    "targets", "compute_convergence_delta",
]


def targets(clf, x, target) -> jax.Array:
  """Per-example class indices ``(N,)`` for ``target`` (int, ``(N,)`` array
  or ``"predicted"``), checked against ``clf``'s number of classes."""
  clf = models.as_classifier("clf", clf)
  x = _common.check_input("x", x, min_rank=1)
  logits = jax.eval_shape(clf.logits, x)
  if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
    raise ValueError(
        f"clf.logits(x) must return (batch, classes) scores; got shape "
        f"{tuple(logits.shape)} for x of shape {tuple(x.shape)}.")
  return _common.resolve_target(target, logits.shape, lambda: clf.logits(x))


def _per_example(method: Callable, clf, x, target, baselines, **kwargs):
  """``method(class_score_fn(clf.logits, t_i), x_i, ...)`` for every example."""
  clf = models.as_classifier("clf", clf)
  x = _common.check_input("x", x, min_rank=1)
  t = targets(clf, x, target)
  if baselines is not None:
    b = jnp.asarray(baselines, x.dtype)
    b = b if b.shape == x.shape else jnp.broadcast_to(b, x.shape[1:])
    per_b = b.shape == x.shape
  else:
    b, per_b = None, False

  def one(xi, ti, bi):
    extra = {} if bi is None else {"baselines": bi}
    return method(input_lib.class_score_fn(clf.logits, ti), xi, **extra, **kwargs)

  return jax.vmap(one, in_axes=(0, 0, 0 if per_b else None))(x, t, b)


def saliency(clf, x, *, target, absolute: bool = False) -> jax.Array:
  """Input gradients of a batch (:func:`~explicable_jax.attribution.gradient`)."""
  return _per_example(input_lib.gradient, clf, x, target, None, absolute=absolute)


def gradient_x_input(clf, x, *, target) -> jax.Array:
  """Gradient times input of a batch
  (:func:`~explicable_jax.attribution.gradient_x_input`)."""
  return _per_example(input_lib.gradient_x_input, clf, x, target, None)


def integrated_gradients(clf, x, *, target, baselines=None, **kwargs):
  """Integrated gradients of a batch
  (:func:`~explicable_jax.attribution.integrated_gradients`; same options,
  ``baselines`` one per example ``(N, ...)`` or shared)."""
  return _per_example(input_lib.integrated_gradients, clf, x, target, baselines, **kwargs)


def smoothgrad(key: jax.Array, clf, x, *, target, **kwargs) -> jax.Array:
  """SmoothGrad of a batch (:func:`~explicable_jax.attribution.smoothgrad`);
  example ``i`` draws its noise from ``fold_in(key, i)``, so a result does
  not depend on how the examples were batched."""
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(jnp.shape(x)[0]))
  clf = models.as_classifier("clf", clf)
  x = _common.check_input("x", x, min_rank=1)
  t = targets(clf, x, target)
  return jax.vmap(lambda k, xi, ti: input_lib.smoothgrad(
      k, input_lib.class_score_fn(clf.logits, ti), xi, **kwargs))(keys, x, t)


def compute_convergence_delta(clf, attributions, x, *, target, baselines=None) -> jax.Array:
  """Captum's ``compute_convergence_delta``: per example,

  .. math:: \\delta = \\sum_i \\phi_i - (F(x) - F(x'))

  for attributions ``(N, ...)`` of the target scores ``F`` of ``clf`` (input
  attributions, or layer attributions whose path runs from ``x'`` to ``x``).
  Zero for an exact integrated-gradients or conductance computation.
  """
  clf = models.as_classifier("clf", clf)
  x = _common.check_input("x", x, min_rank=1, integer_ok=True)
  attributions = jnp.asarray(attributions)
  if attributions.ndim < 1 or attributions.shape[0] != x.shape[0]:
    raise ValueError(
        f"attributions must have one row per example of x ({x.shape[0]}); got shape "
        f"{tuple(attributions.shape)}.")
  t = targets(clf, x, target)
  ref = _common.resolve_baselines(baselines, x)
  scores = lambda v: jnp.take_along_axis(clf.logits(v), t[:, None], axis=-1)[:, 0]
  return attributions.reshape(x.shape[0], -1).sum(1) - (scores(x) - scores(ref))


def _layer_method(core: Callable) -> Callable:
  def method(clf, x, *, layer: str, **kwargs):
    clf = models.as_classifier("clf", clf)
    return core(*clf.split(layer), x, **kwargs)

  method.__doc__ = (
      f"``{core.__name__}`` of a classifier cut at ``layer``: "
      f"``{core.__name__}(*clf.split(layer), x, **kwargs)``.\n\n"
      f"Call as ``{core.__name__}(clf, x, layer=..., target=..., ...)``; the "
      f"options are those of :func:`explicable_jax.attribution.{core.__name__}`.")
  method.__name__ = method.__qualname__ = core.__name__
  method.core = core
  return method


layer_conductance = _layer_method(layer_lib.layer_conductance)
neuron_conductance = _layer_method(layer_lib.neuron_conductance)
layer_gradient_x_activation = _layer_method(layer_lib.layer_gradient_x_activation)
layer_integrated_gradients = _layer_method(layer_lib.layer_integrated_gradients)
grad_cam = _layer_method(layer_lib.grad_cam)
second_order_attribution = _layer_method(second_order_lib.second_order_attribution)
