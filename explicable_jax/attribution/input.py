"""Input attributions of one example: ``score_fn(x) -> scalar``, batch with vmap.

Every method reaches the model only through ``score_fn`` (PAIR saliency's
contract), so it works for any differentiable JAX function. For a classifier
whose ``logits_fn`` takes a batch, :func:`class_score_fn` builds the
single-example score; batch any method with ``jax.vmap``::

    ig = jax.jit(jax.vmap(lambda x, t: integrated_gradients(
        class_score_fn(logits_fn, t), x, n_steps=50)))(images, labels)
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from explicable_jax import _validation, conventions
from explicable_jax.attribution import _common
from explicable_jax import _class_index

__all__ = [
    "NOISE_TUNNEL_TYPES", "class_score_fn", "gradient", "gradient_x_input",
    "integrated_gradients", "smoothgrad",
]

ScoreFn = Callable[[jax.Array], jax.Array]

NOISE_TUNNEL_TYPES = ("smoothgrad", "smoothgrad_sq", "vargrad")


def class_score_fn(logits_fn: Callable[[jax.Array], jax.Array],
                   target: int | jax.Array) -> ScoreFn:
  """``x -> logits_fn(x[None])[0, target]``: one example's score for a class.

  ``logits_fn`` maps a batch to ``(batch, classes)`` (e.g. ``clf.logits``); ``target`` may be traced, so
  the returned function can be vmapped over (input, target) pairs. A
  concrete ``target`` is checked against the number of classes when the score
  is traced (a traced one cannot be: check it where it enters from the host,
  e.g. with ``attribution.batched.targets``); JAX would otherwise clamp an
  index past the last class silently.
  """
  if not callable(logits_fn):
    raise TypeError(f"logits_fn must be a function of a batch (e.g. clf.logits); got "
                    f"{type(logits_fn).__name__}.")
  if isinstance(target, (str, bytes)):
    raise ValueError(
        f"target must be a class index (an int, or an integer array traced under vmap); got "
        f"the string {target!r}: the batched methods (attribution.batched.*) take "
        "target='predicted' and resolve it; here pass the class, e.g. "
        "int(jnp.argmax(logits_fn(x[None])[0])).")
  owner = getattr(logits_fn, "__self__", None)
  shape = getattr(owner, "input_shape", None) if hasattr(owner, "spec") else None

  def score(x):
    if shape is not None and not isinstance(x, (tuple, list)) and tuple(x.shape) != tuple(shape):
      raise ValueError(
          f"x must be one example of shape {tuple(shape)}; got shape {tuple(x.shape)}"
          + (" (a batch? the input methods take one example: use attribution.batched.* "
             "or jax.vmap)" if tuple(x.shape[1:]) == tuple(shape) else "") + ".")
    logits = logits_fn(jax.tree.map(lambda a: a[None], x))
    _validation.check_labels("target", target, int(logits.shape[-1]))
    return _class_index.entries(logits, jnp.reshape(target, (1,)))[0]

  setattr(score, "classifier", conventions.classifier_of(logits_fn))  # read by the input checks
  return score


def _check_score(score_fn: Callable, x: Any) -> jax.Array:
  if not callable(score_fn):
    raise TypeError(
        f"score_fn must be a function x -> scalar; got {type(score_fn).__name__}.")
  x = _common.check_input("x", x, min_rank=0)
  if not _common.is_multi(x) and not isinstance(x, jax.core.Tracer):
    conventions.check_finite("x", x)
    clf = conventions.classifier_of(score_fn)
    if clf is not None and tuple(np.shape(x)) == tuple(clf.input_shape or ()):
      # one example of a classifier's inputs: its rules (scale); a batch given
      # here is named by class_score_fn's own check
      conventions.check_model_inputs("x", jnp.asarray(x)[None], clf, convert=False)
  batched = conventions.classifier_of(score_fn)
  if batched is not None and batched in (score_fn, getattr(score_fn, "__self__", None)):
    raise TypeError(  # the model's own batched logits, not a score of one example
        "score_fn must map one example to a scalar score; got "
        + ("a Classifier" if score_fn is batched else f"a Classifier's {score_fn.__name__}")
        + ", which maps a batch to logits: wrap it, attribution.class_score_fn(clf.logits, target), or use "
        "attribution.batched.* on a batch with the model itself.")
  try:
    out = jax.eval_shape(score_fn, x)
  except (TypeError, ValueError) as e:
    if str(e).startswith("x must be one example"):
      raise
    raise ValueError(
        f"score_fn cannot take x of shape {tuple(x.shape)}: {str(e).splitlines()[0]} "
        "(the input methods take one example and class_score_fn adds the batch axis; "
        "for a batch use attribution.batched.* or jax.vmap).") from e
  if out.shape != ():
    raise ValueError(
        f"score_fn must return a scalar for one example; got shape {out.shape} "
        f"for an input of shape {tuple(x.shape)} (use class_score_fn to pick "
        "one class of a batched model).")
  return x


_one_example = _common.accepts_tuple_inputs


@conventions.boundary()
@_one_example(x_index=1, batched=False, input_shaped_output=True)
def gradient(score_fn: ScoreFn, x: _common.InputsLike, *, absolute: bool = False) -> jax.Array:
  """Saliency: the input gradient of the score (Simonyan et al., 2014).

  .. math:: \\phi_i(x) = \\partial F(x) / \\partial x_i

  Args:
    score_fn: scalar score of one example.
    x: one example.
    absolute: return ``|dF/dx|``, as Captum's ``Saliency`` does by default.

  Returns:
    An array of ``x``'s shape.
  """
  x = _check_score(score_fn, x)
  g = jax.grad(score_fn)(x)
  return jnp.abs(g) if absolute else g


@_one_example(x_index=1, batched=False, input_shaped_output=True)
def gradient_x_input(score_fn: ScoreFn, x: _common.InputsLike) -> jax.Array:
  """Gradient times input (Shrikumar et al., 2016).

  .. math:: \\phi_i(x) = x_i\\,\\partial F(x) / \\partial x_i

  For a linear score ``F(x) = w.x`` it is ``w * x``, whose sum is ``F(x) - F(0)``.
  """
  x = _check_score(score_fn, x)
  return x * jax.grad(score_fn)(x)


@conventions.boundary()
@_one_example(x_index=1, batched=False, input_shaped_output=True)
def integrated_gradients(score_fn: ScoreFn, x: _common.InputsLike, *,
                         baselines: _common.Baselines = None,
                         n_steps: int = 50, method: str = "gausslegendre",
                         internal_batch_size: int | None = None,
                         return_convergence_delta: bool = False,
                         multiply_by_inputs: bool = True) -> jax.Array | tuple[jax.Array,
                         jax.Array]:
  """Integrated gradients (Sundararajan, Taly and Yan, ICML 2017).

  .. math::

     \\mathrm{IG}_i(x) = (x_i - x'_i) \\int_0^1
        \\frac{\\partial F(x' + \\alpha (x - x'))}{\\partial x_i}\\,d\\alpha
     \\approx (x_i - x'_i) \\sum_k w_k\\,
        \\partial_i F(x' + \\alpha_k (x - x'))

  with the nodes and weights of ``method`` (:func:`integration_points`).
  Completeness: ``sum_i IG_i = F(x) - F(x')`` up to the quadrature error,
  which the convergence delta measures.

  Args:
    score_fn: scalar score of one example.
    x: one example.
    baselines: the reference ``x'``: ``None`` (zeros), a scalar, or an array
      of ``x``'s shape.
    n_steps: number of quadrature nodes.
    method: ``riemann_left``, ``riemann_right``, ``riemann_middle``,
      ``riemann_trapezoid`` or ``gausslegendre`` (Captum's default).
    internal_batch_size: evaluate at most this many nodes at once (the chunks
      run one after another); ``None`` evaluates all ``n_steps`` in one call. Under
      ``vmap`` over N examples, each forward pass holds ``N *
      internal_batch_size`` rows.
    return_convergence_delta: also return
      ``sum_i IG_i - (F(x) - F(x'))``.
    multiply_by_inputs: ``False`` returns the path-averaged gradient without
      the ``(x - x')`` factor (Captum's "local" attributions; no delta then).

  Returns:
    The attributions (``x``'s shape), and the scalar delta if asked for.

  Example:
    >>> import jax.numpy as jnp
    >>> w = jnp.array([1.0, -2.0, 0.5])
    >>> ig = integrated_gradients(lambda x: jnp.dot(w, x), jnp.array([1.0, 1.0, 2.0]))
    >>> ig.round(4).tolist()  # a linear score: w * (x - 0), summing to F(x) - F(0)
    [1.0, -2.0, 1.0]
  """
  if not multiply_by_inputs and return_convergence_delta:
    raise ValueError(
        "return_convergence_delta needs multiply_by_inputs=True: without the (x - x') "
        "factor the attributions do not sum to F(x) - F(x').")
  x = _check_score(score_fn, x)
  if baselines is not None:  # the images' units, when x is one image (H, W, C)
    conventions.check_baseline("baselines", baselines, image_scale=not _common.is_multi(x) and (
        np.ndim(x) == 3 and np.shape(x)[-1] in (1, 2, 3, 4)))
  baseline = _common.resolve_baselines(baselines, x)
  alphas, weights = _common.integration_points(method, n_steps)
  chunk = _common.check_chunk(internal_batch_size, len(alphas))
  grad_fn = jax.grad(score_fn)
  avg_grad = _common.weighted_sum_along_path(
      lambda a: grad_fn(_common.interpolate(baseline, x, a)), alphas, weights, chunk)
  if not multiply_by_inputs:
    return avg_grad
  attributions = (x - baseline) * avg_grad
  if not return_convergence_delta:
    return attributions
  delta = attributions.sum() - (score_fn(x) - score_fn(baseline))
  return attributions, delta


@conventions.boundary()
def smoothgrad(key: jax.Array, score_fn: ScoreFn, x: _common.InputsLike, *,
               n_samples: int = 50, stdevs: ArrayLike | tuple[ArrayLike, ...] | None = None,
               nt_type: str = "smoothgrad",
               attribution_fn: Callable[[ScoreFn, jax.Array], jax.Array] | None = None,
               internal_batch_size: int | None = None,
               return_convergence_delta: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
  """SmoothGrad (Smilkov et al., 2017): an attribution averaged over noisy copies.

  .. math::

     \\hat\\phi(x) = \\frac1n \\sum_{k=1}^n \\phi(x + \\epsilon_k),\\quad
     \\epsilon_k \\sim \\mathcal N(0, \\sigma^2)

  ``nt_type`` as in Captum's ``NoiseTunnel``: ``smoothgrad`` (the mean),
  ``smoothgrad_sq`` (the mean of squares) or ``vargrad`` (the variance).

  Its parameters are Captum's, under Captum's names (``NoiseTunnel.attribute``: ``nt_samples``
  is ``n_samples``), so a Captum call translates name for name; every one after the inputs is
  keyword-only with Captum's default, and a config object would break that correspondence.

  Args:
    score_fn: scalar score of one example.
    x: one example (or a tuple of arrays, Captum's multiple inputs).
    key: PRNG key for the noise (split it per example when vmapping).
    n_samples: number of noisy copies.
    stdevs: noise standard deviation ``sigma`` in input units (one per input
      for a tuple); ``None`` uses Smilkov et al.'s 15% of each input's range,
      ``0.15 * (max x - min x)``.
    nt_type: ``smoothgrad``, ``smoothgrad_sq`` or ``vargrad``.
    attribution_fn: ``(score_fn, x) -> attributions``; default
      :func:`gradient`.
    internal_batch_size: evaluate at most this many noisy copies at once.
    return_convergence_delta: also return the convergence delta of every
      noisy copy, ``(n_samples,)`` (Captum's ``NoiseTunnel`` with
      ``return_convergence_delta=True``); ``attribution_fn`` must then take
      ``return_convergence_delta=True`` and return ``(attributions,
      delta)``, as :func:`integrated_gradients` does.

  Returns:
    An array of ``x``'s shape (a tuple for tuple inputs), and the deltas if
    asked for.
  """
  key = _validation.check_key("key", key, call="smoothgrad(key, score_fn, x)")
  if attribution_fn is not None:
    _validation.check_signature("attribution_fn", attribution_fn, 2,
                                "(score_fn, x) -> attributions, e.g. attribution.gradient")
  if nt_type == "vargrad" and isinstance(n_samples, (int, np.integer)) and n_samples < 2:
    raise ValueError(f"n_samples must be at least 2 for nt_type='vargrad' (the variance of "
                     f"one sample is 0, a blank map); got {n_samples}.")
  unit = _unit_scale(x)
  if stdevs is not None and _common.is_multi(x) and _common.is_multi(stdevs):
    stdevs = tuple(conventions.check_perturbation(f"stdevs[{i}]", s, unit_scale=unit)
                   for i, s in enumerate(cast(tuple, stdevs)))
  elif stdevs is not None:
    if not isinstance(stdevs, jax.core.Tracer) and np.ndim(cast(Any, stdevs)) != 0:
      raise conventions.ConventionError(
          f"stdevs must be one number (the noise's standard deviation in the inputs' units, "
          f"e.g. 0.1) for one input; got {stdevs!r} (a sequence is one stdev per input, for "
          "Captum's tuple of inputs).")
    stdevs = conventions.check_perturbation("stdevs", stdevs, unit_scale=unit)
  if stdevs is not None and not any(isinstance(s, jax.core.Tracer) for s in
                                    (stdevs if isinstance(stdevs, tuple) else (stdevs,))) \
      and all(float(cast(Any, s)) == 0
              for s in (stdevs if isinstance(stdevs, tuple) else (stdevs,))):
    import warnings
    warnings.warn("smoothgrad: stdevs=0 adds no noise, so the result is the plain attribution "
                  f"averaged over {n_samples} identical samples; give the noise's standard "
                  "deviation (e.g. 0.15 of the inputs' range).", UserWarning, stacklevel=_validation.user_stacklevel())
  if _common.is_multi(x) and stdevs is None:
    stdevs = tuple(0.15 * (jnp.max(a) - jnp.min(a))
                   for a in _common.check_input("x", tuple(cast(tuple, x)), min_rank=0))
  return _smoothgrad(key, score_fn, x, n_samples=n_samples, stdevs=stdevs,
                     nt_type=nt_type, attribution_fn=attribution_fn,
                     internal_batch_size=internal_batch_size,
                     return_convergence_delta=return_convergence_delta)


def _unit_scale(x) -> bool:
  """Whether concrete float inputs lie on the ``[0, 1]`` scale (then a noise
  stddev above 1 is in the wrong units); traced inputs were checked by the
  caller."""
  for a in (cast(tuple, x) if _common.is_multi(x) else (x,)):
    if isinstance(a, jax.core.Tracer):
      return False
    a = np.asarray(a)
    if a.size == 0 or not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all():
      return False
    if a.min() < -0.5 or a.max() > 1.5:
      return False
  return True


@_one_example(x_index=2, batched=False, input_shaped_output=True,
              ravel_kwargs=("stdevs",))
def _smoothgrad(key, score_fn, x, *, n_samples, stdevs, nt_type, attribution_fn,
                internal_batch_size, return_convergence_delta):
  x = _check_score(score_fn, x)
  _validation.check_choice("nt_type", nt_type, NOISE_TUNNEL_TYPES)
  _validation.check_positive("n_samples", n_samples, integer=True)
  if stdevs is not None and not isinstance(stdevs, jax.core.Tracer):
    if np.any(np.asarray(stdevs) < 0):
      raise ValueError(f"stdevs must be >= 0; got {stdevs!r}.")
  sigma = 0.15 * (x.max() - x.min()) if stdevs is None else jnp.asarray(stdevs, x.dtype)
  if return_convergence_delta and attribution_fn is None:
    raise ValueError(
        "return_convergence_delta needs an attribution_fn with a convergence delta "
        "(e.g. integrated_gradients); plain gradients have none.")
  attribution_fn = gradient if attribution_fn is None else attribution_fn
  n = int(n_samples)
  chunk = _common.check_chunk(internal_batch_size, n)
  noise = jax.random.normal(key, (n,) + x.shape, x.dtype)
  if return_convergence_delta:
    phis, deltas = jax.lax.map(
        lambda eps: attribution_fn(score_fn, x + sigma * eps, return_convergence_delta=True),
        noise, batch_size=chunk)
    mean = phis.mean(0)
    if nt_type == "smoothgrad":
      return mean, deltas
    mean_sq = (phis * phis).mean(0)
    if nt_type == "smoothgrad_sq":
      return mean_sq, deltas
    return jnp.maximum(mean_sq - mean * mean, 0.0), deltas

  def moments(eps):
    phi = attribution_fn(score_fn, x + sigma * eps)
    return phi, phi * phi

  # The node "alpha" is the index of the noise draw; uniform weights give
  # the two means.
  mean, mean_sq = _common.weighted_sum_along_path(
      lambda i: moments(noise[i.astype(jnp.int32)]),
      np.arange(n, dtype=np.float64), np.full(n, 1.0 / n), chunk)
  if nt_type == "smoothgrad":
    return mean
  if nt_type == "smoothgrad_sq":
    return mean_sq
  return jnp.maximum(mean_sq - mean * mean, 0.0)  # Rounding can dip below 0.
