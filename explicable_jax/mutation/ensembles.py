"""Mutant ensembles: many mutants as one stacked pytree, and the accuracy gate.

An ensemble is the operator ``jax.vmap``-ed over split keys (one program per
operator, rate and options, the parameters an argument), kept only where the
mutant keeps most of the original's accuracy, as Wang et al. (ICSE 2019) and
Wu et al. (2019) do.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import conventions
from explicable_jax import _validation
from explicable_jax.mutation._common import params_of
from explicable_jax.mutation.operators import _operator
from explicable_jax.mutation.predictions import mutant_predictions

__all__ = ["mutate_many", "make_mutants", "accuracy_gate", "GateRejectedError"]


@functools.lru_cache(maxsize=32)
def _vmapped_operator(op: Callable, rate: float, options: tuple) -> Callable:
  """The operator vmapped over keys and jitted, params an argument (not a
  constant folded into the program), so that every draw of the same kind
  reuses one compilation."""
  kwargs = dict(options)
  return jax.jit(jax.vmap(lambda k, p: op(k, p, rate, **kwargs), in_axes=(0, None)))


@conventions.key_first
def mutate_many(key: jax.Array, params, n: int, operator, rate: float, **options):
  """``n`` mutants as one stacked pytree: the operator vmapped over split keys.

  .. math:: \\theta_m = \\mathrm{op}(k_m, \\theta, \\mathrm{rate}),\\quad
            (k_1, \\dots, k_n) = \\mathrm{split}(\\mathrm{key}, n)

  Args:
    key: PRNG key.
    params: a parameter pytree or a Classifier (its params).
    n: mutants.
    operator: a name of :data:`~explicable_jax.mutation.OPERATORS` (``"NAI"``,
      ``"GF"``, ``"WS"``, ``"NS"``...) or an operator function.
    rate: the operator's mutation rate.
    **options: the operator's keyword options (``layers``, ``granularity``...).

  Returns:
    The pytree of ``params``' structure, every leaf with a leading axis ``n``
    (mutant ``m`` is ``operator(split(key, n)[m], params, rate)``).

  >>> import jax, jax.numpy as jnp
  >>> params = {"dense": {"kernel": jnp.eye(2), "bias": jnp.zeros(2)}}
  >>> mutants = mutate_many(jax.random.key(0), params, 4, "NAI", 0.5, layers="kernels")
  >>> mutants["dense"]["kernel"].shape
  (4, 2, 2)
  """
  key = _validation.check_key("key", key, call="mutate_many(key, ...)")
  _validation.check_positive("n", n, integer=True)
  params = params_of("params", params)
  op = _operator(operator)
  label = operator if isinstance(operator, str) else getattr(op, "__name__", "operator")
  try:  # an operator is op(key, params, rate, *, options): the options are keyword-only
    positional = [k for k, p in inspect.signature(op).parameters.items()
                  if p.kind is not p.KEYWORD_ONLY]
  except (TypeError, ValueError):
    positional = []
  _validation.check_options(f"operator {label!r}", options, op, exclude=positional)
  keys = jax.random.split(key, int(n))
  try:
    fn = _vmapped_operator(op, rate, tuple(sorted(options.items())))
  except TypeError:  # an unhashable option (a list, an array): compile for this call only
    fn = jax.jit(jax.vmap(lambda k, p: op(k, p, rate, **options), in_axes=(0, None)))
  return fn(keys, params)


class GateRejectedError(ValueError):
  """:func:`make_mutants` gave up: fewer than ``n`` of the ``drawn`` mutants
  passed the accuracy gate (``accepted`` did); the rate is too high."""

  def __init__(self, message: str, *, drawn: int, accepted: int):
    super().__init__(message)
    self.drawn, self.accepted = drawn, accepted


@conventions.key_first
def make_mutants(key: jax.Array, model, n: int, operator, rate: float, *,
                 accuracy_fn: Callable[[Any], np.ndarray] | None = None,
                 min_relative_accuracy: float = 0.9, max_draws: int | None = None,
                 batch: int | None = None, **options):
  """``n`` mutants that pass the accuracy gate, as one stacked pytree.

  Mutants are drawn ``batch`` at a time (one vmapped call each); with
  ``accuracy_fn``, only mutants ``m`` with

  .. math:: \\mathrm{acc}(m) \\ge \\tau \\cdot \\mathrm{acc}(f)

  (``tau = min_relative_accuracy``, ``acc(f)`` is ``accuracy_fn`` of the
  original) are kept, as Wang et al. (ICSE 2019) and Wu et al. do, and more
  are drawn until ``n`` pass.

  Its parameters are the ensemble (``n`` mutants of ``operator`` at ``rate``) and, keyword-only,
  the accuracy gate's settings (Wang et al.); the operator's own options go in ``**options``.

  Args:
    key: PRNG key; draw ``d`` uses ``fold_in(key, d)``.
    model: the trained :class:`~explicable_jax.models.Classifier` (its
      params are mutated) or the parameter pytree itself.
    n: mutants wanted.
    operator: a name of :data:`~explicable_jax.mutation.OPERATORS` or an
      operator function.
    rate: the operator's mutation rate.
    accuracy_fn: stacked mutants -> ``(batch,)`` validation accuracies
      (:func:`accuracy_gate`), or ``None`` to keep every mutant.
    min_relative_accuracy: the gate's threshold (0.9 in both papers).
    max_draws: give up after this many mutants drawn (default ``20 n``),
      raising :class:`GateRejectedError` (a ``ValueError``) that says the
      rate is too high and carries ``drawn`` and ``accepted``.
    batch: mutants per vmapped draw (default ``n``).
    **options: the operator's keyword options (``layers``, ``granularity``...).

  Returns:
    ``(mutants, info)``: the stacked pytree (leading axis ``n``) and a dict
    with ``drawn``, ``accepted``, ``original_accuracy`` and the kept
    mutants' ``accuracies``.

  >>> import jax, jax.numpy as jnp
  >>> params = {"dense": {"kernel": jnp.eye(2), "bias": jnp.zeros(2)}}
  >>> mutants, info = make_mutants(jax.random.key(0), params, 4, "NAI", 0.5, layers="kernels")
  >>> mutants["dense"]["kernel"].shape, info["drawn"], info["accepted"]
  ((4, 2, 2), 4, 4)
  """
  key = _validation.check_key("key", key, call="make_mutants(key, ...)")
  _validation.check_positive("n", n, integer=True)
  _validation.check_fraction("min_relative_accuracy", min_relative_accuracy)
  given_max = max_draws
  max_draws = 20 * n if max_draws is None else max_draws
  _validation.check_positive("max_draws", max_draws, integer=True)
  if max_draws < n:
    raise ValueError(f"max_draws must be at least n={n} (every kept mutant is one draw); got "
                     f"{max_draws}.")
  unread = [f"{k}={v!r}" for k, v in (("min_relative_accuracy", min_relative_accuracy),
                                      ("max_draws", given_max))
            if v != {"min_relative_accuracy": 0.9, "max_draws": None}[k]]
  if unread and accuracy_fn is None:
    raise ValueError(f"{', '.join(unread)} would be ignored: the accuracy gate runs only with "
                     "accuracy_fn (stacked mutants -> validation accuracies, e.g. "
                     "mutation.accuracy_gate); pass accuracy_fn=, or drop them.")
  batch = n if batch is None else batch
  _validation.check_positive("batch", batch, integer=True)
  params = params_of("model", model)
  kept: list[Any] = []
  accs: list[np.ndarray] = []
  drawn, draw = 0, 0
  original: float | None = None
  if accuracy_fn is not None:
    if accuracy_fn is accuracy_gate:
      raise TypeError(
          "accuracy_fn must be the gate built for a validation set, "
          "mutation.accuracy_gate(model, x_val, y_val), not the function accuracy_gate "
          "itself.")
    _validation.check_signature(
        "accuracy_fn", accuracy_fn, 1, "stacked mutants -> their (batch,) accuracies (e.g. "
        "mutation.accuracy_gate(model, x_val, y_val)), or None")
    original = float(_accuracies(accuracy_fn, jax.tree.map(lambda a: a[None], params), 1)[0])
    if not original > 0:  # 0, or NaN: the gate would keep (or refuse) every mutant
      raise ValueError(
          f"accuracy_fn gives the original model an accuracy of {original:g} on its "
          f"validation set, so the gate (keep mutants with accuracy >= "
          f"{min_relative_accuracy:g} x the original's) would keep every mutant and gate "
          "nothing: check that the gate's labels are the true classes of its inputs (in the "
          "model's class order, the inputs on the model's scale) and that the model is "
          "trained; or pass accuracy_fn=None to keep every mutant knowingly.")
  while sum(len(a) for a in accs) < n and drawn < max_draws:
    m = mutate_many(jax.random.fold_in(key, draw), params, batch, operator, rate, **options)
    draw += 1
    drawn += batch
    if accuracy_fn is None:
      acc = np.full(batch, np.nan)
      ok = np.ones(batch, bool)
    else:
      assert original is not None  # set above whenever accuracy_fn is given
      acc = _accuracies(accuracy_fn, m, batch)
      ok = acc >= min_relative_accuracy * original
    sel = np.flatnonzero(ok)
    if sel.size:
      kept.append(jax.tree.map(lambda a: a[sel], m))
      accs.append(acc[sel])
  got = sum(len(a) for a in accs)
  if got < n:
    op_name = operator if isinstance(operator, str) else operator.__name__
    message = (
        f"rate={rate} is too high for operator {op_name}: only {got} of {drawn} mutants "
        f"kept {min_relative_accuracy:.0%} of the original accuracy {original:.4f} "
        f"(wanted n={n}); lower the rate or raise max_draws." if original is not None else
        f"only {got} mutants of operator {op_name} were drawn within max_draws={max_draws} "
        f"(wanted n={n}); raise max_draws.")
    raise GateRejectedError(message, drawn=drawn, accepted=got)
  stacked = jax.tree.map(lambda *a: jnp.concatenate(a)[:n], *kept)
  return stacked, {"drawn": drawn, "accepted": got, "original_accuracy": original,
                   "accuracies": np.concatenate(accs)[:n]}


def _accuracies(accuracy_fn, stacked, batch: int) -> np.ndarray:
  """``accuracy_fn(stacked)`` as ``(batch,)`` floats, one accuracy per stacked
  model, or a ``ValueError`` saying what it returned."""
  out = accuracy_fn(stacked)
  try:
    acc = np.asarray(out, np.float64)
  except (TypeError, ValueError):
    acc = None
  if acc is None or acc.shape != (batch,):
    got = (f"shape {acc.shape}" if acc is not None and acc.ndim else
           f"{type(out).__name__} {out!r}" if acc is not None else type(out).__name__)
    raise ValueError(
        f"accuracy_fn must return one accuracy per stacked model, an array of shape "
        f"({batch},) for {batch} model(s) stacked on the leading axis; got {got}: map the "
        "accuracy over the stack (mutation.accuracy_gate builds such a function).")
  return acc


@conventions.boundary(x="batch", y="labels")
def accuracy_gate(model, x, y, *, mutant_chunk: int = 10,
                  batch_size: int = 500) -> Callable:
  """An ``accuracy_fn`` for :func:`make_mutants`: every stacked mutant's
  accuracy on a validation set ``(x, y)``.

  .. math:: \\mathrm{acc}(m) = \\frac{1}{N} \\sum_i [m(x_i) = y_i]

  Args:
    model: a Classifier or ``logits_fn(params, x)``.
    x: ``(N, ...)`` validation inputs.
    y: ``(N,)`` integer labels.
    mutant_chunk, batch_size: see
      :func:`~explicable_jax.mutation.mutant_predictions`.

  Returns:
    ``accuracy_fn(stacked) -> (n_mutants,)`` accuracies (Wang et al., ICSE
    2019, keep mutants with at least 90% of the original's).
  """
  y = np.asarray(y)
  if y.ndim != 1 or len(y) != len(x):
    raise ValueError(f"y must hold one label per input of x ({len(x)}); got shape {y.shape}.")
  if len(y) and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0):
    raise ValueError(f"y must hold class indices (integers >= 0); got dtype {y.dtype}"
                     + (f" and minimum {y.min()}." if y.size else "."))

  def accuracy_fn(stacked):
    preds = mutant_predictions(model, stacked, x, mutant_chunk=mutant_chunk,
                               batch_size=batch_size)
    return (preds == y[None, :]).mean(axis=1)
  return accuracy_fn
