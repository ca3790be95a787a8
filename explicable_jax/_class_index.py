"""Class indices inside ``jit``, where a traced label cannot be refused.

The labels convention (integer class indices in ``[0, C)``, see
:mod:`explicable_jax.conventions`) is checked at the boundary for concrete
values. A traced index escapes that check, and JAX then answers for another
class without a word: ``x[i]`` clamps ``i = C`` to class ``C - 1``,
``take_along_axis`` fills the value with NaN but gives a zero gradient, and
``one_hot`` gives an all-zero row. Every class lookup of the library goes
through these helpers instead, so an index outside ``[0, C)`` gives NaN, in
the value and in its gradient: a traced out-of-range label or target shows as
NaN (and trips ``fit``'s non-finite guard), never as another class's answer.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["entries", "one_hot", "poison", "rows", "valid"]


@jax.custom_jvp
def poison(value: jax.Array, ok: jax.Array) -> jax.Array:
  """``value`` where ``ok``, NaN elsewhere, in the value and in its
  derivatives (forward and reverse mode, so Hessian-vector products too). A
  product with a 1-or-NaN factor is not enough for the value: XLA folds
  ``one_hot * factor`` into a select that drops the NaN; and ``where`` alone
  passes a zero gradient."""
  return jnp.where(ok, value, jnp.nan)


@poison.defjvp
def _poison_jvp(primals, tangents):
  value, ok = primals
  factor = jnp.where(ok, 1.0, jnp.nan).astype(jnp.result_type(value))
  return poison(value, ok), tangents[0] * factor


def _ok(index, num_classes: int) -> jax.Array:
  index = jnp.asarray(index)
  return (index >= 0) & (index < num_classes)


def valid(value: jax.Array, index, num_classes: int) -> jax.Array:
  """``value`` (one entry per index, e.g. a per-example loss) where ``index``
  lies in ``[0, num_classes)``, NaN elsewhere (value and gradient)."""
  return poison(jnp.asarray(value), _ok(index, num_classes))


def entries(values: jax.Array, index) -> jax.Array:
  """``values[n, index[n]]`` for ``(N, C)`` values and ``(N,)`` indices; NaN
  (value and gradient) where an index lies outside ``[0, C)``."""
  values = jnp.asarray(values)
  index = jnp.asarray(index)
  c = values.shape[-1]
  picked = jnp.take_along_axis(values, jnp.clip(index, 0, c - 1)[:, None], axis=-1)[:, 0]
  return poison(picked, _ok(index, c))


def rows(table: jax.Array, index) -> jax.Array:
  """``table[index]`` (one row per index); NaN rows for indices outside
  ``[0, len(table))``."""
  table = jnp.asarray(table)
  index = jnp.asarray(index)
  n = table.shape[0]
  ok = _ok(index, n).reshape(index.shape + (1,) * (table.ndim - 1))
  return poison(table[jnp.clip(index, 0, n - 1)], ok)


def one_hot(index, num_classes: int, dtype=jnp.float32) -> jax.Array:
  """``jax.nn.one_hot``, with a NaN row (not an all-zero one) for an index
  outside ``[0, num_classes)``."""
  index = jnp.asarray(index)
  return poison(jax.nn.one_hot(index, num_classes, dtype=dtype),
                 _ok(index, num_classes)[..., None])
