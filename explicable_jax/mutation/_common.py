"""Private helpers shared by the mutation package's modules: the model as a
function of its parameters, stacked-mutant checks, labels."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import _validation
from explicable_jax.mutation.operators import _leaves

__all__ = [
    "ClassifierLogits", "ParamsLogits", "abstract", "as_logits", "check_mutants", "chunks",
    "classifier_or_none", "labels", "params_of",
]


def classifier_or_none(model):
  """``model`` as a Classifier (a Classifier or a TrainState), else ``None``."""
  from explicable_jax import models  # the contract; models never imports mutation
  if isinstance(model, models.Classifier) or isinstance(
      getattr(model, "classifier", None), models.Classifier):
    return models.as_classifier("model", model)
  return None


def params_of(name: str, model_or_params):
  """A Classifier's (or TrainState's) params, or the pytree itself."""
  clf = classifier_or_none(model_or_params)
  if clf is not None:
    return clf.params
  _leaves(model_or_params, name)  # a pytree of arrays, not a function
  return model_or_params


def check_mutants(mutants, params, *, related: bool = True) -> int:
  """The number of mutants in a stacked pytree, or a ``ValueError`` saying
  which leaf does not match ``params`` with a leading mutant axis; with
  ``related``, a warning when they share (almost) no weight with ``params``
  (a caller that hands them on to a function that warns passes ``False``)."""
  p_paths, p_leaves, p_def = _leaves(params)
  m_paths, m_leaves, m_def = _leaves(mutants, "mutants")
  stack = ("jax.tree.map(lambda *a: jnp.stack(a), *mutants) stacks a list of mutants; "
           "mutation.make_mutants returns them stacked")
  if (isinstance(mutants, tuple) and len(mutants) == 2 and isinstance(mutants[1], dict)
      and _leaves(mutants[0])[2] == p_def):
    raise ValueError(
        "mutants must be the stacked mutant parameters; got the (mutants, info) pair that "
        "make_mutants returns: pass its first element, mutants, info = make_mutants(...).")
  if p_def != m_def:
    many = (isinstance(mutants, (list, tuple)) and len(mutants) > 0
            and all(_leaves(m)[2] == p_def for m in mutants))
    raise ValueError(
        "mutants must have the structure of params with a leading mutant axis on every "
        f"array; got {len(m_leaves)} arrays for the model's {len(p_leaves)}"
        + (f" (a {type(mutants).__name__} of {len(mutants)} mutants: {stack})" if many else
           " (mutants of another model?)") + ".")
  n = None
  for path, p, m in zip(p_paths, p_leaves, m_leaves):
    if np.ndim(m) != np.ndim(p) + 1 or np.shape(m)[1:] != np.shape(p):
      one = np.shape(m) == np.shape(p)
      raise ValueError(
          f"mutants must have a leading mutant axis on every array: mutants[{path}] must "
          f"have shape (n, *{tuple(np.shape(p))}); got {tuple(np.shape(m))}"
          + (" (one mutant's parameters? add the axis: jax.tree.map(lambda a: a[None], "
             "mutant))" if one else "") + ".")
    if n is None:
      n = np.shape(m)[0]
    elif np.shape(m)[0] != n:
      raise ValueError(f"mutants hold different counts: {path} has {np.shape(m)[0]}, "
                       f"earlier leaves {n}.")
  if not n:
    raise ValueError("mutants must hold at least one mutant; got 0 along the mutant axis.")
  if related:
    _warn_if_unrelated(p_leaves, m_leaves, int(n))
  return int(n)


def _warn_if_unrelated(p_leaves, m_leaves, n: int, *, mutants: int = 8,
                       sample: int = 4096) -> None:
  """Warns when the mutants share (almost) no weight with the model: a
  mutation operator changes a fraction of the weights (the rate) of some
  layers, so most weights of a mutant equal the model's, while the weights
  of another model of the same shapes (mutants of another model, or of an
  earlier checkpoint) equal none. Read on the first ``mutants`` mutants and
  ``sample`` weights of each matrix (concrete arrays only; biases, which
  may all be 0 in any untrained model, are not read)."""
  if any(isinstance(a, jax.core.Tracer) for a in (*p_leaves, *m_leaves)):
    return
  equal = total = 0
  for p, m in zip(p_leaves, m_leaves):
    if np.ndim(p) < 2:
      continue
    p_s = np.asarray(p).reshape(-1)[:sample]
    m_s = np.asarray(m[:mutants]).reshape(min(n, mutants), -1)[:, :sample]
    equal += int(np.sum(m_s == p_s[None]))
    total += m_s.size
  if total and equal / total < 0.01:
    import warnings
    warnings.warn(
        f"mutants share {equal / total:.2%} of their weights with the model (a mutant of it "
        "keeps most of them: a rate changes a fraction of some layers): mutants of another "
        "model, or of another checkpoint of it? Make them from this model "
        "(mutation.make_mutants(key, model, ...)). (At rate 1 on every layer this is "
        "expected.)", UserWarning, stacklevel=_validation.user_stacklevel())


def chunks(n: int, size: int):
  """``(start, stop)`` of consecutive chunks of ``size`` covering ``range(n)``."""
  for s in range(0, n, size):
    yield s, min(n, s + size)


def labels(logits):
  """argmax labels; -1 marks a prediction from non-finite scores (argmax
  would say 0)."""
  out = jnp.argmax(logits, -1).astype(jnp.int32)
  return jnp.where(jnp.all(jnp.isfinite(logits), -1), out, -1)


@dataclasses.dataclass(frozen=True)
class ParamsLogits:
  """``logits_fn(params, x)`` given by the user: ``(params, extra, x) -> logits``."""
  fn: Callable

  def __call__(self, p, extra, xb):
    return self.fn(p, xb)


@dataclasses.dataclass(frozen=True)
class ClassifierLogits:
  """A classifier's evaluation-mode logits as a function of its params,
  with its state passed in (never a constant folded into the program)."""
  spec: Any

  def __call__(self, p, state, xb):
    return self.spec.backend.apply(p, state, xb, train=False, key=None)[0]


def as_logits(model):
  """``(fn(params, extra, x), extra, original_params or None)`` for a
  Classifier (or TrainState) or a ``logits_fn(params, x)``."""
  clf = classifier_or_none(model)
  if clf is not None:
    return ClassifierLogits(clf.spec), clf.state, clf.params
  if not callable(model):
    raise TypeError(
        f"model must be a models.Classifier or a function logits_fn(params, x); got "
        f"{type(model).__name__}.")
  return ParamsLogits(model), None, None


def abstract(params):
  """The shapes and dtypes of ``params`` (for tracing, no values)."""
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), params)
