"""The one call of an optax optimizer's update, for every training loop of the
library (``fit``'s step, the error detector, the substitute model, the
Carlini-Wagner attack)."""
from __future__ import annotations

import functools
from typing import Any

import jax
import optax

__all__ = ["schedule", "update"]


def update(optimizer: optax.GradientTransformation, grads: Any, opt_state: Any,
           params: Any = None) -> tuple[Any, Any]:
  """``optimizer.update(grads, opt_state, params)`` under standard dtype promotion.

  optax mixes Python floats with its ``int32`` step count (bias corrections,
  schedules), which ``jax_numpy_dtype_promotion="strict"`` refuses; the
  library's own code is strict-clean, so a user (or the test suite) running
  under strict promotion can still train. The result is the same under
  either setting.

  Args:
    optimizer: an optax gradient transformation.
    grads: the gradients, a pytree like ``params``.
    opt_state: the optimizer's state.
    params: the parameters, for transformations that read them (weight decay).

  Returns:
    ``(updates, new_opt_state)``, as ``optimizer.update`` returns them.
  """
  with jax.numpy_dtype_promotion("standard"):
    return optimizer.update(grads, opt_state, params)


def schedule(fn: optax.Schedule) -> optax.Schedule:
  """``fn`` (an optax schedule) evaluated under standard dtype promotion, so
  that a user calling it directly under strict promotion gets the value (its
  comparisons and products mix the step count with Python floats).

  Args:
    fn: ``count -> learning rate``.

  Returns:
    The same function of ``count``.
  """
  @functools.wraps(fn)  # keeps optax's name, which a run's fingerprint records
  def wrapped(count: Any) -> Any:
    with jax.numpy_dtype_promotion("standard"):
      return fn(count)
  return wrapped
