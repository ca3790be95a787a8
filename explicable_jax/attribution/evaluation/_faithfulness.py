"""Faithfulness by removing features: deletion and insertion curves (pixel
flipping) and faithfulness correlation."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import conventions
from explicable_jax import _validation
from explicable_jax.attribution.evaluation import _shared
from explicable_jax.attribution._common import Baselines, InputsLike, Target

__all__ = [
    "Curve", "area_under_curve", "deletion_curve", "faithfulness_correlation", "insertion_curve",
]


class Curve(NamedTuple):
  """A deletion or insertion curve: the target score after each step.

  Attributes:
    fractions: ``(n_steps + 1,)``, the fraction of features removed
      (deletion) or inserted (insertion) at each step, from 0 to 1.
    scores: ``(N, n_steps + 1)``, the target score of every example there.
  """
  fractions: jax.Array
  scores: jax.Array


def area_under_curve(curve: Curve) -> jax.Array:
  """``(N,)`` areas under deletion or insertion curves (trapezoid rule over the
  fraction of features, so an area is a mean score in ``[min, max]`` of the
  curve). For deletion lower is more faithful; for insertion higher."""
  if not isinstance(curve, Curve):
    raise TypeError(f"curve must be the Curve that deletion_curve or insertion_curve "
                    f"returns; got {type(curve).__name__}.")
  if np.ndim(curve.fractions) != 1 or np.shape(curve.scores)[-1:] != np.shape(curve.fractions):
    raise ValueError(
        f"curve.scores must be (N, T) with T = len(curve.fractions); got scores of shape "
        f"{tuple(np.shape(curve.scores))} and fractions of shape "
        f"{tuple(np.shape(curve.fractions))}.")
  f = np.asarray(curve.fractions, np.float64)
  if f.size and (not np.isfinite(f).all() or f.min() < 0 or f.max() > 1
                 or (np.diff(f) < 0).any()):
    raise ValueError(
        "curve.fractions must rise from 0 to 1 (the fraction of features removed or "
        f"inserted at each step, in order); got {np.round(f, 4).tolist()[:8]}"
        f"{'...' if f.size > 8 else ''}: a reversed curve has a negative area.")
  return jnp.trapezoid(curve.scores, curve.fractions, axis=-1)


def _map_and_inputs(inputs, attributions, baselines):
  x = _shared.Inputs("inputs", inputs)
  if x.multi:
    raise ValueError("inputs must be one array (N, ...) for the feature-removal metrics; "
                     f"got a tuple of {len(x.leaves)}.")
  (m,) = _shared.like_inputs("attributions", attributions, x, prefix=True)
  (b,) = _shared.per_example_baselines(baselines, x)
  return x, x.leaves[0], m.reshape(x.n, -1), b


def _checked_setup(model, inputs, attributions, baselines, target, softmax: bool):
  """What every feature-removal metric checks and derives first: the model's
  dynamic and static parts, the inputs, the flat maps and the baselines."""
  if not isinstance(softmax, bool):
    raise TypeError(f"softmax must be True or False; got {softmax!r}.")
  model_dyn, model_static = _shared.split_model("model", model)
  if softmax and model_static:  # a plain function: its output is softmaxed, so logits
    conventions.check_model_output("model", model_static["model"], inputs)
  x, xa, m, b = _map_and_inputs(inputs, attributions, baselines)
  _shared.check_target(_shared.forward({**model_dyn, **model_static}["model"]), x, target)
  return model_dyn, model_static, x, xa, m, b


def _curve(model, inputs, attributions, *, target, baselines, n_steps, softmax,
           internal_batch_size, insert: bool) -> Curve:
  n_steps = _shared.check_samples("n_steps", n_steps)
  model_dyn, model_static, x, xa, m, b = _checked_setup(model, inputs, attributions,
                                                         baselines, target, softmax)
  _shared.warn_constant_maps("insertion_curve" if insert else "deletion_curve", m,
                             "their feature order is the tie order (index order), and the "
                             "curve measures that order, not the map")
  n, d = m.shape
  if n_steps > d:
    raise ValueError(
        f"n_steps must be at most the {d} features of an example (each step removes "
        f"round(d / n_steps) more); got {n_steps}, which repeats steps that remove nothing.")
  if internal_batch_size is not None:
    _validation.check_positive("internal_batch_size", internal_batch_size, integer=True)
  counts = tuple(int(c) for c in np.round(np.arange(n_steps + 1) * d / n_steps))
  per_chunk = (n_steps + 1 if internal_batch_size is None else
               _shared.samples_per_chunk(internal_batch_size * n, n, n_steps + 1))
  target_dyn, target_static = _shared.split_target(target)
  scores = _shared.jit_call(
      _curve_scores, dynamic=dict(x=xa, m=m, b=b, **model_dyn, **target_dyn),
      static=dict(shape=(n,) + tuple(jnp.shape(attributions)[1:]), counts=counts,
                  per_chunk=per_chunk, softmax=softmax, insert=insert,
                  **model_static, **target_static))
  return Curve(jnp.asarray(np.asarray(counts) / d, scores.dtype), scores)


def _curve_scores(*, x, m, b, model, target, shape, counts, per_chunk, softmax, insert):
  fn = _shared.forward(model)
  n = x.shape[0]
  t = _shared.targets(fn, _shared.Inputs("inputs", x), target)
  # rank[i, f]: the place of feature f in example i's order, most relevant first
  rank = jnp.argsort(jnp.argsort(-m, axis=1, stable=True), axis=1)
  n_points = len(counts)

  def chunk(js):
    k = js.shape[0]
    c = jnp.asarray(counts)[jnp.minimum(js, n_points - 1)]           # (k,)
    chosen = rank[None] < c[:, None, None]                           # (k, N, D)
    chosen = _shared.expand(chosen.reshape((k,) + shape), x.ndim + 1)
    rows = (jnp.where(chosen, x[None], b[None]) if insert
            else jnp.where(chosen, b[None], x[None]))
    rows = rows.reshape((k * n,) + x.shape[1:])
    s = _shared.scores(fn, rows, None if t is None else jnp.tile(t, k), softmax=softmax)
    return s.reshape(k, n)

  return _shared.over_samples(chunk, n_points, per_chunk).T           # (N, n_steps + 1)


_CURVE_ARGS = """
  Args:
    model: a :class:`~explicable_jax.models.Classifier` or a function of a
      batch returning ``(N, C)`` scores (``(N,)`` with ``target=None``).
    inputs: a batch ``(N, ...)`` (one array).
    attributions: maps of the inputs' shape (every entry a feature) or of a
      leading part of it, e.g. ``(N, H, W)`` pixel maps of ``(N, H, W, C)``
      images (every pixel, all its channels, a feature); the most relevant
      (largest) first, ties in index order. Pass ``|phi|`` to rank by
      magnitude.
    target: a class index, ``N`` indices, ``"predicted"`` or ``None``.
    baselines: the value of a removed feature: a scalar, one example's shape,
      or one per example (default 0; RISE's insertion starts from a blurred
      copy: pass it here).
    n_steps: points after the start; step ``s`` has ``round(s D / n_steps)``
      of the ``D`` features changed.
    softmax: score the target's probability (RISE) rather than its logit.
    internal_batch_size: steps evaluated per forward pass (``N`` rows each);
      ``None``: all at once.

  Returns:
    A :class:`Curve`; :func:`area_under_curve` gives its area.
"""


@conventions.boundary(inputs="batch", attributions="maps", baselines="baseline")
def deletion_curve(model: Any, inputs: InputsLike, attributions: InputsLike, *, target: Target,
                   baselines: Baselines = None, n_steps: int = 20,
                   softmax: bool = True, internal_batch_size: int | None = None) -> Curve:
  """Deletion curve (pixel flipping; Samek et al., IEEE TNNLS 2017; RISE's
  "deletion", Petsiuk et al., BMVC 2018): the target score as the most
  relevant features are replaced by the baseline, in order.

  .. math::

     s_k = f_t\\big(x \\odot (1 - m_k) + x' \\odot m_k\\big),\\quad
     m_k = \\mathbb 1[\\mathrm{rank}(\\phi) < k D / K],\\ k = 0..K

  A faithful map makes the score fall fast: a small area under the curve.
  """
  return _curve(model, inputs, attributions, target=target, baselines=baselines,
                n_steps=n_steps, softmax=softmax, internal_batch_size=internal_batch_size,
                insert=False)


@conventions.boundary(inputs="batch", attributions="maps", baselines="baseline")
def insertion_curve(model: Any, inputs: InputsLike, attributions: InputsLike, *, target: Target,
                    baselines: Baselines = None,
                    n_steps: int = 20, softmax: bool = True,
                    internal_batch_size: int | None = None) -> Curve:
  """Insertion curve (RISE, Petsiuk et al., BMVC 2018): the target score as
  the most relevant features are put back into the baseline, in order.

  .. math::

     s_k = f_t\\big(x' \\odot (1 - m_k) + x \\odot m_k\\big),\\quad
     m_k = \\mathbb 1[\\mathrm{rank}(\\phi) < k D / K],\\ k = 0..K

  A faithful map makes the score rise fast: a large area under the curve.
  """
  return _curve(model, inputs, attributions, target=target, baselines=baselines,
                n_steps=n_steps, softmax=softmax, internal_batch_size=internal_batch_size,
                insert=True)


deletion_curve.__doc__ += _CURVE_ARGS
insertion_curve.__doc__ += _CURVE_ARGS


@jax.jit
def pearson(a: jax.Array, b: jax.Array) -> jax.Array:
  """Pearson correlation along the last axis (NaN where either side is constant)."""
  a = a - a.mean(-1, keepdims=True)
  b = b - b.mean(-1, keepdims=True)
  return (a * b).sum(-1) / jnp.sqrt((a * a).sum(-1) * (b * b).sum(-1))


@conventions.boundary(inputs="batch", attributions="maps", baselines="baseline")
def faithfulness_correlation(key: jax.Array, model: Any, inputs: InputsLike,
                             attributions: InputsLike, *, target: Target,
                             baselines: Baselines = None, n_perturb_samples: int = 100,
                             subset_size: int = 224, softmax: bool = False,
                             max_examples_per_batch: int | None = None) -> jax.Array:
  """Faithfulness correlation (Bhatt, Weller and Moura, IJCAI 2020).

  .. math::

     \\mu_F(f, \\phi, x) = \\operatorname{corr}_{S \\subset [D],\\,|S| = s}
        \\Big(\\sum_{i \\in S} \\phi_i,\\ f_t(x) - f_t(x_{[x_S = x'_S]})\\Big)

  the Pearson correlation, over ``n_perturb_samples`` random subsets ``S`` of
  ``subset_size`` features, between the attribution a subset holds and the
  drop of the target score when the subset is set to the baseline.
  Defaults as Quantus' ``FaithfulnessCorrelation`` (100 subsets of 224,
  logits, baseline 0); 224 features suit 224x224 images, so pass a size that
  fits yours (e.g. a fifth of the features).

  Its parameters follow Quantus's ``FaithfulnessCorrelation`` (``nr_runs`` is
  ``n_perturb_samples``, ``subset_size``) and Captum's names for the rest (``target``,
  ``baselines``, ``max_examples_per_batch``), keyword-only after the inputs.

  Args:
    key: PRNG key; subset ``j`` of example ``i`` draws from
      ``fold_in(key, i * n_perturb_samples + j)``.
    model, inputs, target, baselines, softmax: as in :func:`deletion_curve`.
    attributions: as in :func:`deletion_curve`; features are its entries.
    n_perturb_samples: subsets per example.
    subset_size: ``s``, features per subset (less than their number).
    max_examples_per_batch: rows (examples x subsets) per forward pass.

  Returns:
    ``(N,)`` correlations in ``[-1, 1]``; NaN where the attributions of every
    subset or the score drops are all equal (e.g. a constant map).
  """
  key = _validation.check_key("key", key, call="faithfulness_correlation(key, model, inputs, "
                                                "attributions, ...)")
  n_samples = _shared.check_samples("n_perturb_samples", n_perturb_samples)
  if n_samples < 2:
    raise ValueError(f"n_perturb_samples must be at least 2 (a correlation over the subsets); "
                     f"got {n_samples}.")
  model_dyn, model_static, x, xa, m, b = _checked_setup(model, inputs, attributions,
                                                         baselines, target, softmax)
  _shared.warn_constant_maps("faithfulness_correlation", m, "every subset's attribution sum "
                             "is proportional to its size and their correlation is undefined "
                             "(NaN)")
  n, d = m.shape
  s = _shared.check_samples("subset_size", subset_size)
  if s >= d:
    raise ValueError(f"subset_size must be less than the number of features ({d}); got {s}.")
  target_dyn, target_static = _shared.split_target(target)
  return _shared.jit_call(
      _faithfulness_correlation, dynamic=dict(key=key, x=xa, m=m, b=b, **model_dyn,
                                              **target_dyn),
      static=dict(shape=(n,) + tuple(jnp.shape(attributions)[1:]), subset_size=s,
                  n_samples=n_samples, softmax=softmax,
                  per_chunk=_shared.samples_per_chunk(max_examples_per_batch, n, n_samples),
                  **model_static, **target_static))


def _faithfulness_correlation(*, key, x, m, b, model, target, shape, subset_size, n_samples,
                              softmax, per_chunk):
  fn = _shared.forward(model)
  n, d = m.shape
  t = _shared.targets(fn, _shared.Inputs("inputs", x), target)
  f_x = _shared.scores(fn, x, t, softmax=softmax)

  def chunk(js):
    k = js.shape[0]
    ks = _shared.sample_keys(key, n, js, n_samples)                                 # (k, N)
    pick = jax.vmap(jax.vmap(lambda kk: jax.random.uniform(kk, (d,))))(ks)
    subset = jnp.argsort(jnp.argsort(pick, axis=-1), axis=-1) < subset_size   # (k, N, D)
    held = jnp.where(subset, m[None], 0).sum(-1)
    chosen = _shared.expand(subset.reshape((k,) + shape), x.ndim + 1)
    rows = jnp.where(chosen, b[None], x[None]).reshape((k * n,) + x.shape[1:])
    f_p = _shared.scores(fn, rows, None if t is None else jnp.tile(t, k),
                         softmax=softmax).reshape(k, n)
    return held, f_x[None] - f_p

  held, drop = _shared.over_samples(chunk, n_samples, per_chunk)      # (n_samples, N)
  return pearson(held.T, drop.T)
