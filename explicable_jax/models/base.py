"""A classifier as an ordered sequence of named stages.

Layer attribution methods (conductance, Grad-CAM, second-order maps) need a
model cut in two at a named layer: ``features`` maps the input to that layer's
activation and ``head`` maps the activation to the class scores, so that
``head(features(x, layer), layer) == model(x)``. Every model in the zoo is a
:class:`StagedModel`, whose stages are listed by :attr:`StagedModel.layer_names`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from explicable_jax import _validation, conventions

__all__ = [
    "StagedModel", "check_image_input", "check_widths", "normalize_input",
]

# Weights drawn as in He et al. (2015) and in torch's ``kaiming_normal_``.
he_normal = nnx.initializers.variance_scaling(2.0, "fan_in", "normal")


class StagedModel(nnx.Module):
  """Base class: ``__call__`` runs the stages of :meth:`stages` in order.

  Subclasses implement :meth:`stages`, returning ``(name, fn)`` pairs where
  ``fn(x, rngs)`` maps the previous stage's output to this stage's output and
  ``rngs`` is an ``nnx.Rngs`` (or ``None`` when no randomness is needed).
  Inputs are images in ``[0, 1]`` (NHWC) or feature vectors; any input
  normalisation happens inside the model so that attributions and adversarial
  budgets are in input units.
  """

  def stages(self) -> Sequence[tuple[str, Callable]]:
    raise NotImplementedError

  @property
  def layer_names(self) -> tuple[str, ...]:
    """Names of the stages, in order; any of them can split the model."""
    return tuple(name for name, _ in self.stages())

  def _index(self, layer: str) -> int:
    names = self.layer_names
    if layer not in names:
      raise ValueError(
          f"layer must be one of {', '.join(names)}; got {layer!r}.")
    return names.index(layer)

  def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
    for _, fn in self.stages():
      x = fn(x, rngs)
    return x

  def features(self, x: jax.Array, layer: str, *,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """The activation at the output of stage ``layer``."""
    stop = self._index(layer)
    for _, fn in self.stages()[: stop + 1]:
      x = fn(x, rngs)
    return x

  def head(self, h: jax.Array, layer: str, *,
           rngs: nnx.Rngs | None = None) -> jax.Array:
    """The class scores computed from the activation ``h`` of stage ``layer``."""
    start = self._index(layer)
    for _, fn in self.stages()[start + 1:]:
      h = fn(h, rngs)
    return h


def normalize_input(x: jax.Array, mean: tuple[float, ...] | None,
                    std: tuple[float, ...] | None) -> jax.Array:
  """``(x - mean) / std`` with per-channel constants, or ``x`` when unset."""
  if mean is None:
    return x
  return (x - jnp.asarray(mean, x.dtype)) / jnp.asarray(std, x.dtype)


@conventions.boundary()
@_validation.named_check
def check_widths(name: str, value, *, allow_empty: bool = True) -> tuple[int, ...]:
  """Layer widths as a tuple of positive ints: one int is one layer
  (``hidden=8`` is ``hidden=(8,)``); anything else (a float, a string, a
  zero, a nested list) raises ``ValueError`` naming the argument, never a
  model built from a guess.

  Example:
    >>> check_widths("hidden", 8), check_widths("hidden", [50, 30])
    ((8,), (50, 30))
  """
  items = (value,) if isinstance(value, (int, np.integer)) else value
  ok = isinstance(items, (tuple, list)) and all(
      isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in items)
  if not ok or (not allow_empty and not items):
    raise ValueError(
        f"{name} must be a positive int (one layer) or a sequence of positive ints (one "
        f"width per layer, e.g. (50, 30)){'' if allow_empty else ', not empty'}; got "
        f"{value!r}.")
  return tuple(int(v) for v in items)


@_validation.named_check
def check_image_input(name: str, x: jax.Array, channels: int) -> None:
  """Raises ``ValueError`` unless ``x`` is an NHWC batch with ``channels``."""
  _validation.check_rank(name, x.shape, (4,))
  if x.shape[-1] != channels:
    raise ValueError(
        f"{name} must have {channels} channels in its last axis (NHWC); "
        f"got shape {tuple(x.shape)}.")
