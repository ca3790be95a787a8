"""Dependency analysis on jaxprs, shared by the model contract (is a split
clean?) and the layer attributions (is a head's gradient constant?)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
from jax.extend.core import Literal

__all__ = [
    "dependent_outputs", "depends_on_first", "used_inputs",
]


def dependent_outputs(jaxpr, dependent_inputs: Sequence[bool]) -> list[bool]:
  """Which outputs of ``jaxpr`` depend on the inputs flagged in ``dependent_inputs``.

  Forward propagation over the equations; calls with a sub-jaxpr whose inputs
  match the call's (``jit``, ``custom_jvp_call``, ...) are followed, anything
  else counts every output as dependent when any input is (never a false
  "independent").
  """
  dependent = {v for v, d in zip(jaxpr.invars, dependent_inputs) if d}
  is_dep = lambda v: not isinstance(v, Literal) and v in dependent
  for eqn in jaxpr.eqns:
    flags = [is_dep(v) for v in eqn.invars]
    if not any(flags):
      continue
    sub = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
    sub = getattr(sub, "jaxpr", sub)
    if sub is not None and len(sub.invars) == len(flags) and len(sub.outvars) == len(eqn.outvars):
      out_flags = dependent_outputs(sub, flags)
    else:
      out_flags = [True] * len(eqn.outvars)
    dependent.update(v for v, d in zip(eqn.outvars, out_flags) if d)
  return [is_dep(v) for v in jaxpr.outvars]


def depends_on_first(fn: Callable, first, *rest) -> bool:
  """True when some output of ``fn(first, *rest)`` depends on ``first``
  (arrays or ``ShapeDtypeStruct`` s; decided from the jaxpr, never a false
  "independent")."""
  closed = jax.make_jaxpr(fn)(first, *rest)
  n_first = len(jax.tree.leaves(first))
  flags = [i < n_first for i in range(len(closed.jaxpr.invars))]
  return any(dependent_outputs(closed.jaxpr, flags))


def used_inputs(jaxpr) -> list[bool]:
  """Which inputs of ``jaxpr`` some output reads (backward liveness over the
  equations; an equation with a live output reads all of its inputs, so an
  input is never wrongly called unused)."""
  live = {v for v in jaxpr.outvars if not isinstance(v, Literal)}
  for eqn in reversed(jaxpr.eqns):
    if any(v in live for v in eqn.outvars):
      live.update(v for v in eqn.invars if not isinstance(v, Literal))
  return [v in live for v in jaxpr.invars]
